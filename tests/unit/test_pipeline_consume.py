"""``consume_ready``: never waits while messages are ready, waits once when none are."""

from __future__ import annotations

from fraudstream.pipeline.consume import consume_ready


class _FakeConsumer:
    """Hands out queued messages; records the (count, timeout) of every call."""

    def __init__(self, ready: list[int], arriving: list[int]) -> None:
        self.ready, self.arriving = list(ready), list(arriving)
        self.calls: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[int]:
        self.calls.append((num_messages, timeout))
        if not self.ready and timeout > 0:
            self.ready, self.arriving = self.arriving, []
        out, self.ready = self.ready[:num_messages], self.ready[num_messages:]
        return out


def test_ready_messages_are_returned_without_waiting() -> None:
    c = _FakeConsumer(ready=[1, 2, 3], arriving=[4])
    assert consume_ready(c, 10, wait_s=0.2) == [1, 2, 3]  # type: ignore[arg-type]
    assert c.calls == [(10, 0)]


def test_batch_size_is_respected() -> None:
    c = _FakeConsumer(ready=list(range(25)), arriving=[])
    assert consume_ready(c, 10, wait_s=0.2) == list(range(10))  # type: ignore[arg-type]


def test_waits_for_the_first_then_takes_what_came_with_it() -> None:
    c = _FakeConsumer(ready=[], arriving=[7, 8, 9])
    assert consume_ready(c, 10, wait_s=0.2) == [7, 8, 9]  # type: ignore[arg-type]
    assert c.calls == [(10, 0), (1, 0.2), (9, 0)]


def test_nothing_arriving_returns_empty_and_no_wait_means_no_wait() -> None:
    c = _FakeConsumer(ready=[], arriving=[])
    assert consume_ready(c, 10, wait_s=0.2) == []  # type: ignore[arg-type]
    c = _FakeConsumer(ready=[], arriving=[1])
    assert consume_ready(c, 10, wait_s=0) == []  # type: ignore[arg-type]
    assert c.calls == [(10, 0)]
