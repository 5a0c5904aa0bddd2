"""The detector's fast paths give exactly what the straightforward code gives."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import numpy as np
import pytest
from confluent_kafka import KafkaError
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.contracts.batch import TxBatch
from fraudstream.contracts.messages import Decision, Transaction
from fraudstream.features.definitions import FEATURE_NAMES, INTEGER_FEATURES
from fraudstream.pipeline import validate as v
from fraudstream.pipeline.core import Decisions
from fraudstream.pipeline.decode import PartitionBatch, split
from fraudstream.pipeline.global_reader import GlobalReader
from fraudstream.pipeline.pack import pack
from fraudstream.pipeline.publish import encode_outputs, unpack
from fraudstream.pipeline.worker import Worker
from fraudstream.scoring.combine import DECISION_NAMES
from tests.corpus import GOOD, cases

NOW = int(time.time() * 1000)


def strict(value: bytes | None, key: bytes | None, now_ms: int) -> tuple[Transaction, int] | v.Invalid:
    """The validation as written before the fast paths (strict decoder, generic id check)."""
    if value is None:
        return v.Invalid("empty_message", "no value")
    if len(value) > v.MAX_MESSAGE_BYTES:
        return v.Invalid("oversized", f"{len(value)} bytes > {v.MAX_MESSAGE_BYTES}")
    res = v._decode_strict(value)
    if isinstance(res, v.Invalid):
        return res
    tx = res
    if not v._plain_ids(tx):
        for field in ("transaction_id", "customer_id", "terminal_id"):
            problem = v._id_problem(getattr(tx, field), field)
            if problem:
                return problem
    if not math.isfinite(tx.tx_amount) or tx.tx_amount > v.MAX_AMOUNT:
        return v.Invalid("invalid_amount", f"tx_amount {tx.tx_amount!r} out of range")
    if round(tx.tx_amount * 100) <= 0:
        return v.Invalid("invalid_amount", "tx_amount rounds to 0.00")
    when_ms = v._epoch_ms(tx.tx_datetime)
    if when_ms < v.EPOCH_2000_MS:
        return v.Invalid("invalid_timestamp", "tx_datetime before 2000-01-01")
    if when_ms > now_ms + v.MAX_FUTURE_MS:
        return v.Invalid("invalid_timestamp", "tx_datetime more than a day in the future")
    for coord, bound in (("lat", 90.0), ("lon", 180.0)):
        x = getattr(tx, coord)
        if x is not None and not (math.isfinite(x) and -bound <= x <= bound):
            return v.Invalid("schema", f"{coord} out of range")
    if key is None or key.decode("utf-8", "replace") != str(tx.customer_id):
        return v.Invalid("key_mismatch", "message key must be the customer_id")
    return tx, when_ms


def same(a: object, b: object) -> bool:
    """Both accepted as the same transaction (an accepted message may come as the lax type, a
    ``Transaction`` subclass: same fields, values and encoding), or rejected alike."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return (
            isinstance(a[0], Transaction) and isinstance(b[0], Transaction)
            and msgspec.structs.astuple(a[0]) == msgspec.structs.astuple(b[0])
            and msgspec.json.encode(a[0]) == msgspec.json.encode(b[0])
            and msgspec.msgpack.encode(a[0]) == msgspec.msgpack.encode(b[0])
            and a[1] == b[1]
        )
    return a == b


CURRENCIES = ["EUR", "USD", "EUR\n", "eur", "EURO", "", "E1R", "ÉUR", 5, None]


@pytest.mark.parametrize(("name", "value", "key", "reason"), cases(), ids=[c[0] for c in cases()])
def test_corpus_same_as_strict(name: str, value: bytes | None, key: bytes | None, reason: str | None) -> None:
    assert same(v.validate_timed(value, key, NOW), strict(value, key, NOW))


@pytest.mark.parametrize("currency", CURRENCIES)
def test_currency_same_as_strict(currency: object) -> None:
    raw = json.dumps({**GOOD, "currency": currency}).encode()
    key = GOOD["customer_id"].encode()
    assert same(v.validate_timed(raw, key, NOW), strict(raw, key, NOW))


def test_lax_type_is_transaction_without_the_pattern() -> None:
    assert issubclass(v._LaxTransaction, Transaction)
    assert v._LaxTransaction.__struct_fields__ == Transaction.__struct_fields__
    assert v._LaxTransaction.__struct_defaults__ == Transaction.__struct_defaults__
    assert v._CURRENCY.pattern == "^[A-Z]{3}$"


@pytest.mark.parametrize("field", ["transaction_id", "customer_id", "terminal_id"])
@pytest.mark.parametrize("value", ["", "9" * v.MAX_ID_CHARS, "9" * (v.MAX_ID_CHARS + 1), 12])
def test_lax_ids_are_bounded_as_the_check_requires(field: str, value: object) -> None:
    raw, key = _valid(3, **{field: value})
    expected = strict(raw, key, NOW)
    assert same(v.validate_timed(raw, key, NOW), expected)
    ok = isinstance(value, int) or 0 < len(str(value)) <= v.MAX_ID_CHARS
    try:
        v._lax_decode(raw)
        decoded = True
    except msgspec.ValidationError:
        decoded = False
    assert decoded == ok
    pairs = [_valid(i) for i in range(20)]
    values, keys = [p[0] for p in pairs] + [raw], [p[1] for p in pairs] + [key]
    got = v.validate_batch(values, keys, NOW)
    assert all(type(g) is tuple for g in got[:-1]) and same(got[-1], expected)


@pytest.mark.parametrize(("field", "text"), [
    ("lat", "90"), ("lat", "-90.0"), ("lat", "90.0000001"), ("lat", "-1e999"), ("lat", "null"),
    ("lon", "180"), ("lon", "-180.5"), ("lon", "1e999"), ("lon", "0.5"), ("lat", "true"),
])
def test_lax_coordinates_are_bounded_as_the_check_requires(field: str, text: str) -> None:
    """Messages that take the batch's fast path (decimal-digit ids) but for the coordinate."""
    pairs = [_valid(i) for i in range(20)]
    values = [raw[:-1] + f',"{field}":{text}}}'.encode() for raw, _ in pairs]
    keys = [key for _, key in pairs]
    got = v.validate_batch(values, keys, NOW)
    for g, raw, key in zip(got, values, keys, strict=True):
        expected = strict(raw, key, NOW)
        assert same(v.validate_timed(raw, key, NOW), expected)
        assert same(g, expected), (g, expected)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
ids = st.one_of(
    st.text(max_size=6), st.from_regex(r"[0-9]{1,5}", fullmatch=True), st.integers(-5, 10**6),
    st.sampled_from(["12", "１２", "²", " 1", "1 ", "a\x00", "x" * 129, "9" * 129]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*GOOD, "lat", "lon", "channel", "country"]),
        json_values | ids | st.sampled_from(CURRENCIES) | st.sampled_from(
            ["2018-04-10T12:00:00.5+02:00", "2018-04-10T12:00:00Z", "2999-01-01T00:00:00+00:00"]),
    ),
    st.sampled_from(["key", "none", "bad"]),
)
def test_random_messages_same_as_strict(fields: dict, key_kind: str) -> None:
    body = {**GOOD, **fields}
    raw = json.dumps(body).encode()
    key = {"key": str(body.get("customer_id")).encode(), "none": None, "bad": b"\xff"}[key_kind]
    assert same(v.validate_timed(raw, key, NOW), strict(raw, key, NOW))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_same_as_strict(raw: bytes) -> None:
    assert same(v.validate_timed(raw, b"1", NOW), strict(raw, b"1", NOW))


# ---- a whole list at a time --------------------------------------------------------------------
def _valid(i: int, **changes: object) -> tuple[bytes, bytes]:
    body = {**GOOD, "transaction_id": str(1000 + i), "customer_id": str(i % 9),
            "terminal_id": str(i % 4), "tx_amount": round(1 + 3.7 * i, 2),
            "tx_datetime": f"2018-04-10T12:{i % 60:02d}:{i % 7:02d}+00:00", **changes}
    return json.dumps(body, separators=(",", ":")).encode(), str(body["customer_id"]).encode()


#: Messages that are not one JSON object each but could look like it next to others.
PIECES = [b"", b" ", b"{}", b'{"a":1,', b'"b":2}', b'{"x":"}', b"}", b"{", b"[]", b"1", b"null",
          b'{"a":{"b":1}', b'{"c":1}}', b"\n", b"{}\n{}", b" {} "]


def _batch_same(values: list[bytes | None], keys: list[bytes | None]) -> None:
    got = v.validate_batch(values, keys, NOW)
    want = [v.validate_timed(x, k, NOW) for x, k in zip(values, keys, strict=True)]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert same(g, w), (g, w)


def test_batch_of_valid_messages_is_validated_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = [_valid(i) for i in range(50)]
    values, keys = [p[0] for p in pairs], [p[1] for p in pairs]
    one_at_a_time = []
    monkeypatch.setattr(v, "validate_timed", lambda *a: one_at_a_time.append(a) or strict(*a))
    got = v.validate_batch(values, keys, NOW)  # type: ignore[arg-type]
    assert not one_at_a_time  # the common case never takes the slow path
    assert [same(g, strict(x, k, NOW)) for g, x, k in zip(got, values, keys, strict=True)] == [True] * 50


def test_batch_with_the_corpus_mixed_in_gives_what_each_gives() -> None:
    bad = cases()
    for step in (1, 3, 17):
        values: list[bytes | None] = []
        keys: list[bytes | None] = []
        for i in range(60):
            if i % step == 0:
                _, value, key, _ = bad[(i // step) % len(bad)]
            else:
                value, key = _valid(i)
            values.append(value)
            keys.append(key)
        _batch_same(values, keys)


@pytest.mark.parametrize("piece", PIECES)
def test_batch_is_not_fooled_by_fragments_that_join_into_objects(
    piece: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = [_valid(i) for i in range(200)]
    values: list[bytes | None] = [p[0] for p in pairs]
    keys: list[bytes | None] = [p[1] for p in pairs]
    for at in (0, 70, 150, 199):
        values[at] = piece
    values[100] = values[101] + b" " + values[102]  # two objects in one message
    values[30] = values[30][:-1] + b',"extra":' + values[31] + b"}"
    _batch_same(values, keys)
    one_at_a_time: list[object] = []
    monkeypatch.setattr(v, "validate_timed", lambda *a: one_at_a_time.append(a) or strict(*a))
    v.validate_batch(values, keys, NOW)
    assert len(one_at_a_time) < 100  # the valid stretches between them were validated at once


@settings(max_examples=150, deadline=None)
@given(st.lists(
    st.one_of(
        st.integers(0, 500).map(lambda i: _valid(i)),
        st.integers(0, 500).map(lambda i: (_valid(i)[0], b"other")),
        st.tuples(st.sampled_from(PIECES), st.just(b"1")),
        st.tuples(st.sampled_from([c[1] for c in cases()]), st.just(GOOD["customer_id"].encode())),
        st.builds(lambda i, f: _valid(i, **f), st.integers(0, 99), st.dictionaries(
            st.sampled_from(["tx_amount", "tx_datetime", "lat", "lon", "customer_id", "terminal_id",
                             "transaction_id", "currency"]),
            st.sampled_from([0.001, 0.005, 1e10, -1, 5, "5", "a b", "١٢", "x" * 129, "9" * 129, None,
                             45.0, 200.0, "EUR", "usd", "1999-12-31T23:59:59+00:00",
                             "2018-04-10T12:00:00.0005+02:00", "2999-01-01T00:00:00Z",
                             "2018-04-10T12:00:00"]), max_size=2)),
    ),
    min_size=0, max_size=80,
))
def test_random_batches_give_what_each_message_gives(pairs: list[tuple[bytes, bytes]]) -> None:
    _batch_same([p[0] for p in pairs], [p[1] for p in pairs])


# ---- columns ---------------------------------------------------------------------------------
def _tx(i: int, **changes: object) -> Transaction:
    base = {
        "transaction_id": str(i), "tx_datetime": datetime(2018, 4, 1, tzinfo=UTC) + timedelta(seconds=37 * i),
        "customer_id": str(i % 7), "terminal_id": i % 5, "tx_amount": 1.005 + i, "currency": "EUR",
    }
    return Transaction(**{**base, **changes})


def test_columns_from_given_times() -> None:
    txs = [_tx(i) for i in range(20)]
    times = [round(t.tx_datetime.timestamp() * 1000) for t in txs]
    a, b = TxBatch.from_transactions(txs), TxBatch.from_transactions(txs, times)
    for f in ("transaction_id", "customer_id", "terminal_id", "records"):
        assert getattr(a, f) == getattr(b, f)
    for f in ("time_ms", "tx_amount", "amount_cents"):
        assert np.array_equal(getattr(a, f), getattr(b, f)) and getattr(a, f).dtype == getattr(b, f).dtype
    with pytest.raises(ValueError, match="one time per transaction"):
        TxBatch.from_transactions(txs, times[:-1])


# ---- messages validated by the global reader ---------------------------------------------------
class _Msg:
    def __init__(self, partition: int, offset: int, value: bytes | None, key: bytes | None) -> None:
        self._p, self._o, self._v, self._k = partition, offset, value, key

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes | None:
        return self._k


def _messages() -> list[_Msg]:
    out = []
    bad = [c for c in cases() if c[3] is not None][:6]
    for i in range(40):
        p = i % 3
        if i % 7 == 3:
            _, value, key, _ = bad[i % len(bad)]
        else:
            body = {**GOOD, "transaction_id": f"t{i}", "customer_id": str(i % 4),
                    "tx_datetime": f"2018-04-10T12:{i:02d}:00+00:00"}
            value, key = json.dumps(body).encode(), str(i % 4).encode()
        out.append(_Msg(p, 100 + i, value, key))
    return out


def _flat(batches: dict[int, PartitionBatch]) -> list:
    return [
        (p, pb.last_offset, pb.offsets, pb.times, [msgspec.structs.asdict(t) for t in pb.valid],
         [(d.message.offset(), d.reason, d.detail) for d in pb.dead])
        for p, pb in sorted(batches.items())
    ]


def test_partition_batch_of_entries_is_adding_them_one_by_one() -> None:
    msgs = _messages()
    results = v.validate_batch([m.value() for m in msgs], [m.key() for m in msgs], NOW)
    entries = [(m.offset(), m, r) for m, r in zip(msgs, results, strict=True)]
    valid_only = [e for e in entries if isinstance(e[2], tuple)]
    for chosen in (entries, valid_only, valid_only[:1], []):
        one_by_one = PartitionBatch(0)
        for e in chosen:
            one_by_one.add(*e)  # type: ignore[arg-type]
        at_once = PartitionBatch.of(0, chosen)  # type: ignore[arg-type]
        assert _flat({0: at_once}) == _flat({0: one_by_one})
        assert at_once.messages == one_by_one.messages


# ---- output encoding --------------------------------------------------------------------------
def _plain(name: str, values: np.ndarray) -> list[float] | list[int]:
    """Counts and flags as ints when every value is whole (written ``3``, not ``3.0``)."""
    if name in INTEGER_FEATURES and all(float(x).is_integer() and abs(x) < 2**53 for x in values):
        return [int(x) for x in values]
    return values.tolist()


def _old_encode(pb: PartitionBatch, dec: Decisions, now_iso: str) -> list[tuple[bytes, bytes]]:
    names = list(dec.features)
    cols = [_plain(n, np.nan_to_num(dec.features[n], nan=0.0, posinf=0.0, neginf=0.0)) for n in names]
    scores, decisions = dec.score.tolist(), dec.decision.tolist()
    out = []
    for i, (tx, feats) in enumerate(zip(pb.valid, zip(*cols, strict=True), strict=True)):
        msg = Decision(
            transaction_id=str(tx.transaction_id), tx_datetime=tx.tx_datetime.isoformat(),
            customer_id=str(tx.customer_id), terminal_id=str(tx.terminal_id),
            tx_amount=tx.tx_amount, currency=tx.currency, score=scores[i],
            decision=DECISION_NAMES[decisions[i]], reasons=dec.reasons[i],
            features=dict(zip(names, feats, strict=True)), model_version=dec.model_version,
            rules_version=dec.rules_version, processed_at=now_iso, channel=tx.channel,
            merchant_category=tx.merchant_category, country=tx.country, lat=tx.lat, lon=tx.lon,
        )
        out.append((str(tx.customer_id).encode(), msgspec.json.encode(msg)))
    return out


def _decided(n: int, seed: int, names: list[str] = FEATURE_NAMES) -> tuple[PartitionBatch, Decisions]:
    rng = np.random.default_rng(seed)
    offsets = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(0), "Z0"), timezone(timedelta(hours=-5))]
    txs = []
    for i in range(n):
        when = datetime(2018, 4, 1, tzinfo=offsets[i % 4]) + timedelta(seconds=int(rng.integers(0, 10**7)))
        if i % 4 == 1:
            when = when.replace(microsecond=int(rng.integers(1, 10**6)))
        txs.append(_tx(
            i, tx_datetime=when, customer_id=i if i % 5 == 0 else f"c\"{i}",
            tx_amount=float(rng.random() * 100),
            channel="web" if i % 2 else None, lat=float(rng.random()) if i % 3 else None, lon=None,
        ))
    feats = {}
    for k, name in enumerate(names):
        col = rng.random(n) * 10.0 ** int(rng.integers(-8, 17))
        col[rng.random(n) < 0.1] = np.nan
        col[rng.random(n) < 0.05] = np.inf if k % 2 else -np.inf
        whole = rng.random(n) < 0.2
        col[whole] = np.round(col[whole])
        if name in INTEGER_FEATURES and k % 3:  # a count: whole (NaN are written as 0)
            col = np.round(col)
        feats[name] = col
    pb = PartitionBatch(0, valid=txs, offsets=list(range(n)),
                        times=[round(t.tx_datetime.timestamp() * 1000) for t in txs])
    dec = Decisions(
        score=rng.random(n), decision=rng.integers(0, 3, n).astype(np.int8),
        reasons=[[f"rule:r{i % 3}"] if i % 2 else [] for i in range(n)], features=feats,
        rules_version="7" if seed % 2 else None, model_version="m1" if seed % 3 else None,
    )
    return pb, dec


def _shipped(pb: PartitionBatch, dec: Decisions, now_iso: str) -> list[tuple[bytes, bytes]]:
    """What the publisher process produces: packed by the decider, encoded on its side."""
    blob = pack(pb, dec, now_iso)
    assert isinstance(blob, bytes)
    return encode_outputs(unpack(blob))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_encode_is_byte_identical_to_the_plain_encoding(seed: int) -> None:
    pb, dec = _decided(300, seed)
    now_iso = datetime.now(UTC).isoformat()
    assert _shipped(pb, dec, now_iso) == _old_encode(pb, dec, now_iso)


def test_counts_and_flags_are_written_as_integers_when_whole() -> None:
    pb, dec = _decided(300, 0)
    dec.features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"][:] = np.arange(300) % 7
    dec.features["TX_DURING_NIGHT"][:] = np.arange(300) % 2
    dec.features["TERMINAL_ID_NB_TX_7DAY_WINDOW"][:] = 4.0
    dec.features["TERMINAL_ID_NB_TX_7DAY_WINDOW"][5] = 2.5  # not whole: the column stays floats
    dec.features["TX_AMOUNT"][:] = 12.0  # whole, but not a count
    messages = _shipped(pb, dec, "x")
    assert b'"CUSTOMER_ID_NB_TX_1DAY_WINDOW":3,' in messages[3][1]
    assert b'"TX_DURING_NIGHT":1,' in messages[1][1] and b'"TX_DURING_NIGHT":0,' in messages[0][1]
    assert b'"TERMINAL_ID_NB_TX_7DAY_WINDOW":4.0,' in messages[0][1]
    assert b'"TX_AMOUNT":12.0,' in messages[0][1]
    for i, (_, value) in enumerate(messages):  # the same numbers as the floats
        features = json.loads(value)["features"]
        assert features == {n: float(np.nan_to_num(dec.features[n][i], posinf=0.0, neginf=0.0))
                            for n in FEATURE_NAMES}
    whole = {n for n in INTEGER_FEATURES  # below 2**53 (where every float is whole)
             if isinstance(_plain(n, np.nan_to_num(dec.features[n], posinf=0.0, neginf=0.0))[0], int)}
    written = json.loads(messages[0][1])["features"]
    assert {n for n, x in written.items() if isinstance(x, int)} == whole
    assert len(whole) >= 3 and "TERMINAL_ID_NB_TX_7DAY_WINDOW" not in whole


def test_encode_other_feature_sets_and_empty_batches() -> None:
    pb, dec = _decided(50, 5, names=["b", "a"])
    assert _shipped(pb, dec, "x") == _old_encode(pb, dec, "x")
    empty = PartitionBatch(0)
    assert _shipped(empty, Decisions(np.zeros(0), np.zeros(0, np.int8), [], {}, None, None), "x") == []


def test_suspicious_rows_are_unchanged() -> None:
    pb, dec = _decided(200, 6)
    rows = Worker._suspicious(pb, dec)
    idx = np.flatnonzero(dec.decision >= 1).tolist()
    assert [r.transaction_id for r in rows] == [str(pb.valid[i].transaction_id) for i in idx]
    for r, i in zip(rows, idx, strict=True):
        assert r.features == {n: float(np.nan_to_num(dec.features[n][i])) for n in dec.features}
        assert r.score == float(dec.score[i]) and r.decision == DECISION_NAMES[int(dec.decision[i])]
        assert r.source_offset == pb.offsets[i] and r.reasons == dec.reasons[i]
        assert r.tx_datetime == pb.valid[i].tx_datetime


class _Fetched(_Msg):
    def __init__(self, m: _Msg, topic: str) -> None:
        super().__init__(m.partition(), m.offset(), m.value(), m.key())
        self._topic = topic

    def topic(self) -> str:
        return self._topic

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, NOW)


class _Client:
    def __init__(self, msgs: list[_Fetched]) -> None:
        self.msgs = msgs

    def consume(self, n: int, timeout: float) -> list[_Fetched]:
        out, self.msgs = self.msgs[:n], self.msgs[n:]
        return out


def test_global_reader_keeps_for_the_worker_only_what_it_will_take() -> None:
    """The history before the worker's committed offset is read for the terminal state only."""
    from fraudstream.features.terminal import TerminalState

    reader = GlobalReader.__new__(GlobalReader)
    reader.topics = ("input", "training")
    reader.now_ms = lambda: NOW
    reader.terminal = TerminalState()
    reader.last, reader.eof, reader.position = {}, {}, {}
    reader.observed = reader.labels = 0
    reader._shared, reader._share_from = {}, {}
    msgs = _messages()
    reader.last = {("input", p): -1 for p in range(3)} | {("training", 0): -1}
    reader.clients = {("input", p): _Client([_Fetched(m, "input") for m in msgs if m.partition() == p])
                      for p in range(3)}
    reader.clients["training", 0] = _Client([])
    reader._start = {}
    reader.share(0, from_offset=120)
    reader.poll(0.0)
    valid = [m for m in msgs if not isinstance(v.validate_timed(m.value(), m.key(), NOW), v.Invalid)]
    assert reader.observed == len(valid)  # every valid one fed the terminal state
    kept = [off for chunk in reader._shared[0] for off in chunk.offsets]  # the rejected too: for the DLQ
    assert kept == [m.offset() for m in msgs if m.partition() == 0 and m.offset() >= 120]
    assert reader.position[("input", 0)] == max(m.offset() for m in msgs if m.partition() == 0) + 1


class _Event(_Fetched):
    """A fetched event that is not a message: end of partition, or another error."""

    def __init__(self, m: _Msg, code: int) -> None:
        super().__init__(m, "input")
        self._code = code

    def error(self) -> KafkaError:  # type: ignore[override]
        return KafkaError(self._code)


def test_global_reader_is_at_a_partition_end_only_after_its_last_event_said_so() -> None:
    """Position and end-of-partition state come from a partition's last message or end event:
    an end followed by new messages is no end, an error other than the end changes nothing."""
    from fraudstream.features.terminal import TerminalState

    reader = GlobalReader.__new__(GlobalReader)
    reader.topics = ("input", "training")
    reader.now_ms = lambda: NOW
    reader.terminal = TerminalState()
    reader.eof, reader.position = {}, {}
    reader.observed = reader.labels = 0
    reader._shared, reader._share_from = {}, {}
    msgs = [_Fetched(m, "input") for m in _messages() if m.partition() == 0][:3]
    key = ("input", 0)
    reader.last = {key: -1}
    end = _Event(_Msg(0, msgs[-1].offset() + 1, None, None), KafkaError._PARTITION_EOF)
    other = _Event(_Msg(0, 0, None, None), KafkaError._TRANSPORT)
    cases = [
        (msgs + [end], True, end.offset()),
        ([end] + msgs, False, msgs[-1].offset() + 1),
        (msgs[:2] + [other], False, msgs[1].offset() + 1),
    ]
    for events, at_end, position in cases:
        reader.clients = {key: _Client(events)}
        reader.poll(0.0, [key])
        assert reader.eof[key] is at_end and reader.position[key] == position


def _taking_reader(msgs: list[_Msg], owned: list[int], clock: list[float] | None = None) -> GlobalReader:
    """A reader of three ``input`` partitions holding ``msgs``, sharing ``owned`` from 0."""
    from fraudstream.features.terminal import TerminalState

    reader = GlobalReader.__new__(GlobalReader)
    reader.topics = ("input", "training")
    reader.now_ms = lambda: NOW
    now = clock if clock is not None else [0.0]
    reader.wall_s = lambda: now[0]
    reader.terminal = TerminalState()
    reader.eof, reader.position, reader._start = {}, {}, {}
    reader.observed = reader.labels = 0
    reader._shared, reader._share_from = {}, {}
    reader.last = {("input", p): -1 for p in range(3)}
    reader.clients = {("input", p): _Client([_Fetched(m, "input") for m in msgs if m.partition() == p])
                      for p in range(3)}
    for p in owned:
        reader.share(p, 0)
    return reader


def test_take_gives_what_validating_the_messages_gives() -> None:
    """A batch taken from the reader (validated as it was read) is the batch the worker's own
    consumer and ``split`` made of the same messages: valid ones, offsets, times, dead letters."""
    msgs = [_Msg(m.partition(), m.offset() - 100, m.value(), m.key()) for m in _messages()]
    reader = _taking_reader(msgs, owned=[0, 2])
    taken = reader.take(1000, wait_s=0.0)
    assert _flat(taken) == _flat(split([m for m in msgs if m.partition() in (0, 2)], NOW))
    assert all([m.offset() for m in pb.messages] == pb.offsets for pb in taken.values())
    assert reader.observed == sum(len(pb.valid) for pb in taken.values())  # only its own are read
    assert reader.shared_from() == {0: taken[0].last_offset + 1, 2: taken[2].last_offset + 1}
    assert reader.take(1000, wait_s=0.0) == {}


def test_take_shares_a_batch_between_partitions_and_goes_on_where_it_stopped() -> None:
    msgs = [_Msg(p, o, json.dumps({**GOOD, "transaction_id": f"t{p}-{o}"}).encode(),
                 GOOD["customer_id"].encode()) for p in range(3) for o in range(20)]
    msgs += [_Msg(1, o, json.dumps({**GOOD, "transaction_id": f"t1-{o}"}).encode(),
                  GOOD["customer_id"].encode()) for o in range(20, 40)]
    reader = _taking_reader(msgs, owned=[0, 1, 2])
    first = reader.take(12, wait_s=0.0)
    assert {p: pb.offsets for p, pb in first.items()} == {p: list(range(4)) for p in range(3)}
    second = reader.take(60, wait_s=0.0)  # partition 1 has more: it gets what the others leave
    assert {p: (pb.offsets[0], pb.last_offset) for p, pb in second.items()} == {
        0: (4, 19), 1: (4, 31), 2: (4, 19)}
    assert reader.take(60, wait_s=0.0)[1].offsets == list(range(32, 40))


def test_take_waits_for_a_first_message_then_for_the_commit_interval() -> None:
    clock = [0.0]
    reader = _taking_reader([], owned=[0])

    def poll(timeout_s: float = 0.2, keys: list | None = None) -> int:
        clock[0] += max(timeout_s, 0.001)
        return 0

    reader.poll = poll  # type: ignore[method-assign]
    reader.wall_s = lambda: clock[0]
    assert reader.take(10, wait_s=0.2) == {}
    assert 0.2 <= clock[0] < 0.25
    clock[0] = 0.0
    assert reader.take(10, wait_s=0.0, fill_until=0.5) == {}
    assert 0.5 <= clock[0] < 0.55


def test_a_partition_read_past_where_the_worker_resumes_is_read_again() -> None:
    """Assigned behind what the reader read (it read ahead for the terminal state), or rewound
    after an aborted batch: the client goes back, what was kept is dropped, and the
    transactions read twice count once in the terminal state."""
    msgs = [_Msg(0, o, json.dumps({**GOOD, "transaction_id": f"t{o}"}).encode(),
                 GOOD["customer_id"].encode()) for o in range(10)]
    reader = _taking_reader(msgs, owned=[])
    reader.poll(0.0)
    assert reader.position[("input", 0)] == 10 and reader.observed == 10
    n_before = reader.terminal.n_transactions
    assigned: list[list] = []

    def assign(tps: list) -> None:
        assigned.append([(tp.topic, tp.partition, tp.offset) for tp in tps])
        reader.clients["input", 0].msgs = [_Fetched(m, "input") for m in msgs if m.offset() >= tps[0].offset]

    reader.clients["input", 0].assign = assign  # type: ignore[attr-defined]
    reader.share(0, 6)
    assert assigned == [[("input", 0, 6)]] and reader.position[("input", 0)] == 6
    assert [pb.offsets for pb in reader.take(100, wait_s=0.0).values()] == [[6, 7, 8, 9]]
    assert reader.terminal.n_transactions == n_before  # observed once
    reader.rewind(0, 8)
    assert assigned[-1] == [("input", 0, 8)] and reader.shared_from() == {0: 8}
    assert [pb.offsets for pb in reader.take(100, wait_s=0.0).values()] == [[8, 9]]
    reader.unshare(0)
    reader.share(0, 20)  # ahead of what was read: nothing to read again
    assert len(assigned) == 2 and reader.shared_from() == {0: 20}


def _same_columns(a: TxBatch, b: TxBatch) -> bool:
    return (
        a.transaction_id == b.transaction_id and a.customer_id == b.customer_id
        and a.terminal_id == b.terminal_id and a.records == b.records
        and a.time_ms.dtype == b.time_ms.dtype == np.int64 and a.time_ms.tolist() == b.time_ms.tolist()
        and a.tx_amount.tolist() == b.tx_amount.tolist()
        and a.amount_cents.dtype == b.amount_cents.dtype == np.int64
        and a.amount_cents.tolist() == b.amount_cents.tolist()
    )


def test_validate_columns_are_the_columns_of_the_accepted_transactions() -> None:
    pairs = [_valid(i) for i in range(40)]
    values, keys = [p[0] for p in pairs], [p[1] for p in pairs]
    results, accepted = v.validate_columns(values, keys, NOW)  # type: ignore[arg-type]
    assert results == v.validate_batch(values, keys, NOW)  # type: ignore[arg-type]
    assert accepted is not None and _same_columns(
        accepted, TxBatch.from_transactions([r[0] for r in results], [r[1] for r in results]))  # type: ignore[index]
    keys[7] = b"other"  # one rejected: no columns
    results, accepted = v.validate_columns(values, keys, NOW)  # type: ignore[arg-type]
    assert accepted is None and isinstance(results[7], v.Invalid)


class _Chunked(_Client):
    """A client that hands out at most ``size`` messages a call."""

    def __init__(self, msgs: list[_Fetched], size: int) -> None:
        super().__init__(msgs)
        self.size = size

    def consume(self, n: int, timeout: float) -> list[_Fetched]:
        return super().consume(min(n, self.size), timeout)


def test_taken_batches_carry_the_columns_validation_built() -> None:
    """Batches cut across the chunks the reader read (split, joined) carry the columns of
    their transactions, or none when a chunk had none (validated one at a time)."""
    msgs = [_Msg(p, o, *_valid(100 * p + o)) for p in range(2) for o in range(60)]
    reader = _taking_reader([], owned=[0, 1])
    # Chunks of 17, 17, 17 and 9 (fewer than BATCH_MIN: validated one at a time, no columns).
    reader.clients = {("input", p): _Chunked([_Fetched(m, "input") for m in msgs if m.partition() == p], 17)
                      for p in range(2)}
    seen = []
    for size in (20, 50, 24, 40, 100):
        for pb in reader.take(size, wait_s=0.0).values():
            rebuilt = TxBatch.from_transactions(pb.valid, pb.times)
            assert pb.accepted is None or _same_columns(pb.accepted, rebuilt)
            assert _same_columns(pb.columns(), rebuilt)
            seen.append((pb.offsets[0], pb.last_offset, pb.accepted is not None))
    assert sorted(o for s in seen for o in range(s[0], s[1] + 1)) == sorted([o for o in range(60)] * 2)
    assert any(a and first < 17 <= last for first, last, a in seen)  # joined across two chunks
    assert any(a and first % 17 for first, _, a in seen)  # from a chunk split before
    assert any(not a for _, last, a in seen if last >= 51)  # the short chunk: no columns


def test_dedupe_drops_duplicates_from_the_columns_too() -> None:
    from fraudstream.features.customer import CustomerState

    msgs = [_Msg(0, o, *_valid(o % 25)) for o in range(30)]  # 25..29 repeat 0..4
    results, accepted = v.validate_columns([m.value() for m in msgs], [m.key() for m in msgs], NOW)
    assert accepted is not None
    pb = PartitionBatch.of_columns(0, [m.offset() for m in msgs], list(msgs), results, accepted)  # type: ignore[arg-type]
    Worker._dedupe(pb, CustomerState())
    assert [d.message.offset() for d in pb.dead] == list(range(25, 30))
    assert _same_columns(pb.columns(), TxBatch.from_transactions(pb.valid, pb.times))
    assert len(pb.columns()) == 25
