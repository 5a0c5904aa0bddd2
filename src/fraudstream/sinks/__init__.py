"""Where decisions go: Kafka topics (in the worker's transaction) and PostgreSQL."""
