from __future__ import annotations

import pytest

from fraudstream.pipeline.global_reader import decode_label


@pytest.mark.parametrize("value", [
    None, b"", b"\xff\xfe", b'{"transaction_id": "\xff"}', b"[]", b'{"transaction_id": "1"}',
    b'{"transaction_id": "1", "is_fraud": "yes", "labeled_at": "2018-01-01T00:00:00Z", "source": "x"}',
    b'{"transaction_id": "1", "is_fraud": true, "labeled_at": "2018-01-01T00:00:00", "source": "analyst"}',
])
def test_unreadable_labels_are_skipped_not_raised(value: bytes | None) -> None:
    assert decode_label(value) is None


def test_valid_label() -> None:
    lb = decode_label(b'{"transaction_id": 5, "is_fraud": true, "labeled_at": "2018-01-01T00:00:00Z",'
                      b' "source": "chargeback"}')
    assert lb is not None and lb.is_fraud and str(lb.transaction_id) == "5"
