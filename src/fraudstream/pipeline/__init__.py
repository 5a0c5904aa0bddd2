"""The detector: a pure core (``core.process``) inside a thin Kafka/PostgreSQL shell (``worker``)."""
