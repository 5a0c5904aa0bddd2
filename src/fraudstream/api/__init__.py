"""``fraudstream api``: the JSON API and the analysts' dashboard (FastAPI, served by uvicorn).

:func:`fraudstream.api.app.create_app` builds the application from :class:`~fraudstream.settings.Settings`.
"""
