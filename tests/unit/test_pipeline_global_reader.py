"""When the global reader lets a batch go: past ``t``, or at the end once the grace is over."""

from __future__ import annotations

from fraudstream.pipeline.global_reader import NEG_INF, GlobalReader


class _Marks:
    """The cached watermarks a consumer would report: partition -> high watermark."""

    def __init__(self, high: dict[tuple[str, int], int]) -> None:
        self.high = high

    def get_watermark_offsets(self, tp, cached: bool = False):  # noqa: ANN001, ANN201
        assert cached, "the reader must not make a broker round trip per check"
        return (0, self.high[(tp.topic, tp.partition)])


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _reader(clock: _Clock) -> GlobalReader:
    reader = GlobalReader.__new__(GlobalReader)
    reader.topics = ("input", "training")
    reader.wall_s = clock
    keys = [("input", 0), ("input", 1), ("training", 0)]
    reader.last = dict.fromkeys(keys, NEG_INF)
    reader.eof = dict.fromkeys(keys, False)
    reader.position = {}
    reader.clients = dict.fromkeys(keys, _Marks(dict.fromkeys(keys, 0)))
    reader.polls = 0
    reader.polled = []

    def poll(timeout_s: float = 0.2, keys: list[tuple[str, int]] | None = None) -> int:
        reader.polls += 1
        reader.polled.append(keys)
        clock.now += timeout_s
        return 0

    reader.poll = poll  # type: ignore[method-assign]
    return reader


def _at_end(r: GlobalReader, key: tuple[str, int], last: int, position: int, high: int) -> None:
    """Partition ``key`` read up to ``last`` (event time), at its end as of the end event, with
    ``high`` as the latest fetch's high watermark."""
    r.last[key] = last
    r.eof[key] = True
    r.position[key] = position
    r.clients["input", 0].high[key] = high


def test_partitions_past_t_go_at_once_whatever_the_grace() -> None:
    clock = _Clock()
    r = _reader(clock)
    r.last = dict.fromkeys(r.last, 2_000)
    r.advance_to(1_000, settle_at=clock.now + 5.0)
    assert r.polls == 0


def test_an_end_counts_only_once_the_grace_is_over() -> None:
    clock = _Clock()
    r = _reader(clock)
    r.last[("input", 0)] = 2_000  # the batch's own partition, read past t
    r.position[("input", 0)] = 11
    for k in (("input", 1), ("training", 0)):  # idle: at their end (position == high mark)
        _at_end(r, k, NEG_INF, position=7, high=7)
    assert r.ready(1_000, {0: 10}, settled=True)
    assert not r.ready(1_000, {0: 10}, settled=False)
    start = clock.now
    r.advance_to(1_000, owned={0: 10}, settle_at=start + 0.3)
    assert clock.now >= start + 0.3 and clock.now < start + 0.36


def test_an_end_the_fetch_has_moved_past_is_no_end() -> None:
    clock = _Clock()
    r = _reader(clock)
    r.last = dict.fromkeys(r.last, 2_000)
    _at_end(r, ("input", 1), 500, position=7, high=9)  # two more appended since the end event
    assert not r.ready(1_000, settled=True)


def test_the_batch_s_own_partition_must_be_read_past_the_batch() -> None:
    clock = _Clock()
    r = _reader(clock)
    r.last = dict.fromkeys(r.last, 2_000)
    _at_end(r, ("input", 0), 900, position=5, high=0)  # the cached high mark is stale
    assert not r.ready(1_000, {0: 9}, settled=True)
    r.position[("input", 0)] = 10
    assert r.ready(1_000, {0: 9}, settled=True)


def test_only_the_partitions_still_behind_are_read() -> None:
    """Reading a partition already past ``t`` would only run it further ahead: ``input`` read
    ahead once filled the reader's queue while a ``training`` partition behind ``t`` waited."""
    clock = _Clock()
    r = _reader(clock)
    r.last = {("input", 0): 2_000, ("input", 1): 2_000, ("training", 0): 500}
    assert r.waiting(1_000) == [("training", 0)]

    def poll(timeout_s: float = 0.2, keys: list[tuple[str, int]] | None = None) -> int:
        r.polled.append(keys)
        r.last[("training", 0)] = 1_500
        return 1

    r.poll = poll  # type: ignore[method-assign]
    r.advance_to(1_000)
    assert r.polled == [[("training", 0)]]
