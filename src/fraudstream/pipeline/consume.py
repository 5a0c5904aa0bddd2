"""Batch consumption that never waits while messages are ready.

librdkafka's batch consume returns when it has ``max_messages`` *or* when its timeout expires:
with a timeout of 0.2 s and light traffic, every message would wait up to 0.2 s in the local
queue before anyone looked at it. Here the batch is whatever has been fetched already; only
when nothing has, it waits, and returns as soon as the first message arrives (plus whatever
came with it). Under load batches still grow by themselves: everything fetched while the
previous batch was being processed and committed.
"""

from __future__ import annotations

from confluent_kafka import Consumer, Message


def consume_ready(consumer: Consumer, max_messages: int, wait_s: float) -> list[Message]:
    """Up to ``max_messages`` already fetched; if none, wait up to ``wait_s`` for the first."""
    msgs = consumer.consume(max_messages, timeout=0)
    if msgs or wait_s <= 0:
        return msgs
    msgs = consumer.consume(1, timeout=wait_s)
    if msgs and max_messages > 1:
        msgs.extend(consumer.consume(max_messages - 1, timeout=0))
    return msgs
