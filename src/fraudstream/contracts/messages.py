"""The wire contracts, as msgspec Structs (fast decoding that also validates types).

``input`` (key ``customer_id``): one :class:`Transaction`.
``training`` (key ``transaction_id``): one :class:`Label`.
``output`` (key ``customer_id``): one :class:`Decision`.

JSON Schemas generated from these types are kept in ``schemas/`` (a test keeps them in
sync). Integers are accepted for the ids and read as their decimal string.

``gc=False``: a detector allocates one of these per message (three per transaction); none can
be part of a reference cycle (their fields are strings, numbers, times and lists or Structs of
those), so the cycle collector need not track them (nor traverse them while a batch holds them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Id = Annotated[str | int, msgspec.Meta(description="string, or an integer read as its decimal")]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True, description="ISO-8601 with an offset")]


class Transaction(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True, gc=False):
    """A card transaction on ``input``."""

    transaction_id: Id
    tx_datetime: AwareDatetime
    customer_id: Id
    terminal_id: Id
    tx_amount: Annotated[float, msgspec.Meta(gt=0, description="amount, > 0, finite")]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] = "EUR"
    channel: str | None = None
    merchant_category: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None


class Label(msgspec.Struct, omit_defaults=True, gc=False):
    """Ground truth for a transaction on ``training`` (chargebacks, analyst verdicts)."""

    transaction_id: Id
    is_fraud: bool
    labeled_at: AwareDatetime
    source: Literal["chargeback", "analyst", "simulator"]
    fraud_scenario: int | None = None


class Decision(msgspec.Struct, omit_defaults=False, gc=False):
    """What the detector decided for one transaction, on ``output``."""

    transaction_id: str
    tx_datetime: str
    customer_id: str
    terminal_id: str
    tx_amount: float
    currency: str
    score: Annotated[float, msgspec.Meta(ge=0, le=1)]
    decision: Literal["approve", "review", "decline"]
    reasons: list[str]
    features: dict[str, float]
    model_version: str | None
    rules_version: str | None
    processed_at: str
    channel: str | None = None
    merchant_category: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None


def json_schemas() -> dict[str, dict[str, object]]:
    """The JSON Schema of each topic's message, keyed by topic role."""
    return {
        "input.transaction": msgspec.json.schema(Transaction),
        "training.label": msgspec.json.schema(Label),
        "output.decision": msgspec.json.schema(Decision),
    }
