"""The bench's process monitor: PSS (expensive to read) only at a phase's first sample and
every ``pss_every`` samples; CPU and RSS at every sample."""

from __future__ import annotations

import os

from fraudstream.bench.procmon import Component, Monitor


def test_pss_is_read_at_phase_changes_and_every_nth_sample() -> None:
    mon = Monitor([Component("me", lambda: [os.getpid()])], pss_every=3)
    mon._take(record=False)
    mon.phase = "a"
    for _ in range(7):
        mon._take(record=True)
    mon.phase = "b"
    for _ in range(2):
        mon._take(record=True)
    with_pss = [("me" in s.pss) for s in mon.samples]
    assert with_pss == [True, False, False, True, False, False, True, True, False]
    assert all(s.rss["me"] > 0 and "me" in s.cpu for s in mon.samples)
    summary = mon.summary("b")["me"]
    assert summary["pss_max_mb"] > 0 and summary["samples"] == 2
