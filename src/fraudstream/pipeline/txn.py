"""A transactional Kafka call that cannot block the worker for good.

librdkafka's ``send_offsets_to_transaction`` can wait forever, past its own timeout, when the
group coordinator it cached was removed from the cluster metadata (a broker killed and
restarted): the coordinator request only moves on when that broker changes state, and a
decommissioned broker never does (librdkafka issues #5456 and #5511, open for the version
pinned here; seen in this project's broker fail-over test, both workers stuck > 7 min). The
call therefore runs on a thread of its own, and the worker gives up on it after a deadline:
it abandons that producer, starts another with the same transactional id (which fences the
old one and aborts its transaction) and decides the batch again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Wedged(Exception):
    """The call did not return by its deadline; the client it was made on is unusable."""


def call_with_deadline(call: Callable[[], T], deadline_s: float, name: str = "txn-call") -> T:
    """``call()``'s result or exception, or :class:`Wedged` after ``deadline_s``. The thread
    of a wedged call is a daemon left blocked: it cannot be interrupted from Python."""
    done = threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    if not done.wait(deadline_s):
        raise Wedged(f"{name} still blocked after {deadline_s:.0f} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]
