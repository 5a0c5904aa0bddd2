"""Summarise a py-spy profile of a detector by stage: where its interpreter's time goes.

    py-spy record -p <detector pid> -d 30 -r 50 --format raw -o detector.raw
    .venv/bin/python benchmarks/profile_summary.py detector.raw

(py-spy is not a project dependency: ``pip install py-spy``.) Samples are per thread; py-spy
leaves out idle ones (waiting on a lock, a socket or librdkafka), so ``active`` is the share
of the run each thread had work, and a stage's share is of all samples of the run
(``threads x duration x rate``). Stages are matched on function names, first match wins.
"""

from __future__ import annotations

import sys
from collections import Counter

#: (stage, any of these function names in the stack). Order matters: first match wins.
STAGES = [
    ("validate + observe for the terminal table (global reader)", ("GlobalReader.poll",)),
    ("wait for / read the global reader", ("GlobalReader.advance_to", "GlobalReader.take")),
    ("dedupe, columns", ("Worker._dedupe", "PartitionBatch.columns")),
    ("features", ("compute_features",)),
    ("rules + model + score", ("process",)),
    ("encode decisions (JSON)", ("Worker._encode",)),
    ("rows for PostgreSQL", ("Worker._suspicious",)),
    ("PostgreSQL write", ("SuspiciousSink.write",)),
    ("Kafka transaction (produce, offsets, commit)", ("Worker._commit",)),
    ("consume", ("Worker._consume", "consume_ready")),
]


def stage_of(frames: list[str]) -> str:
    names = {f.split(" (")[0] for f in frames}
    for stage, keys in STAGES:
        if any(k in names for k in keys):
            return stage
    return "other"


def main(path: str, seconds: float = 30.0, rate: float = 50.0) -> None:
    by_stage: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            by_thread["decider thread" if "_WorkItem.run" in stack else "worker thread"] += n
            by_stage[stage_of(frames[1:])] += n
    possible = seconds * rate
    print(f"{total} samples over {seconds:g} s at {rate:g} Hz")
    for thread, n in by_thread.most_common():
        print(f"  {thread:16s} active {n / possible:6.1%} of the run")
    for stage, n in by_stage.most_common():
        print(f"  {n / total:6.1%}  {stage}")


if __name__ == "__main__":
    main(sys.argv[1], *(float(a) for a in sys.argv[2:4]))
