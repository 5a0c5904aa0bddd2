"""The analysts' dashboard: static HTML, CSS and JavaScript served by the API itself."""
