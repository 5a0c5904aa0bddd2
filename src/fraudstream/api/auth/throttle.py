"""Slows password guessing: after ``max_failures`` failed logins for one user name from one
client address within ``window_s``, further attempts are refused (429) until the window
moves on. Keyed by name *and* address so that a stranger cannot lock a real user out from
elsewhere. In memory, per API process: a bound on guessing speed, not an audit trail.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window_s
        while q and q[0] < horizon:
            q.popleft()
        return q

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        with self._lock:
            q = self._recent((name.lower(), client))
            if len(q) < self.max_failures:
                return 0.0
            return max(0.0, q[0] + self.window_s - self._clock())

    def failed(self, name: str, client: str) -> None:
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a spray of names
                self._failures.clear()
            self._recent((name.lower(), client)).append(self._clock())

    def succeeded(self, name: str, client: str) -> None:
        with self._lock:
            self._failures.pop((name.lower(), client), None)
