"""``fraudstream bench``: end-to-end performance measurements on the local cluster.

Opt-in (never part of the test suite's timing assertions): throughput with exactly-once on,
latency percentiles at fixed offered rates, a naive one-message-at-a-time baseline, and CPU /
memory per component sampled from ``/proc``.
"""
