"""The bench's producer process: replay or live-send a contract frame, then a JSON summary.

``python -m fraudstream.bench.loadgen --frame F --mode replay|live [--rate R] [--count N]
[--label-delay SECONDS] --summary OUT.json`` (topics and cluster from the environment).
Runs in its own process so that its CPU is measured apart and does not compete with the
bench's own consumer for one interpreter.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd

from fraudstream.producer.kafka import LIVE_OVERRIDES, BatchProducer
from fraudstream.producer.replay import live, replay
from fraudstream.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frame", required=True)
    ap.add_argument("--mode", choices=("replay", "live"), required=True)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--count", type=int, default=None)
    ap.add_argument("--label-delay", type=float, default=None,
                    help="seconds of event time; omitted: no labels")
    ap.add_argument("--speedup", type=float, default=1.0,
                    help="live: event time runs this many times faster than wall time, ending now")
    ap.add_argument("--summary", required=True)
    a = ap.parse_args(argv)
    settings = load_settings()
    frame = pd.read_parquet(a.frame)
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    delay = timedelta(seconds=a.label_delay) if a.label_delay is not None else None
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    producer = BatchProducer(settings, **(LIVE_OVERRIDES if a.mode == "live" else {}))
    started = time.time()
    if a.mode == "replay":
        if a.count is not None:
            frame = frame.iloc[: a.count]
        s = replay(producer, frame, rate=a.rate, topic_input=settings.topic_input,
                   topic_training=settings.topic_training, label_delay=delay)
    else:
        if a.count is None:
            raise SystemExit("--count is required in live mode (every load loop is bounded)")
        s = live(producer, frame, rate=a.rate, count=a.count, should_stop=lambda: stop["flag"],
                 now=event_clock(a.count / a.rate if a.rate > 0 else 0.0, a.speedup),
                 topic_input=settings.topic_input, topic_training=settings.topic_training,
                 label_delay=delay)
    with open(a.summary, "w") as f:
        json.dump(
            {
                "transactions": s.transactions,
                "labels": s.labels,
                "seconds": s.seconds,
                "rate": s.rate,
                "errors": s.stats.errors,
                "started": started,
                "ended": time.time(),
            },
            f,
        )


def event_clock(span_s: float, speedup: float) -> Callable[[], datetime]:
    """Event time for a live run of ``span_s`` wall seconds: now when ``speedup`` is 1;
    otherwise it runs ``speedup`` times faster and ends at about now, so that a bounded run
    covers weeks of event time (the detector's 30-day windows fill and start expiring) without
    ever being in the future."""
    if speedup == 1.0:
        return lambda: datetime.now(UTC)
    wall_start = datetime.now(UTC)
    event_start = wall_start - timedelta(seconds=span_s * speedup)

    def now() -> datetime:
        wall = datetime.now(UTC)
        return min(wall, event_start + (wall - wall_start) * speedup)

    return now


if __name__ == "__main__":
    main()
