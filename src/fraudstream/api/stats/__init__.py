"""Live statistics for the overview: throughput, decision mix, alert and fraud rates, latency,
consumer lag, aggregated in memory from the topics themselves."""
