"""Browser sessions: a signed, timestamped cookie (itsdangerous) carrying the user name and
a CSRF token.

CSRF defence is threefold: the cookie is ``SameSite=Strict`` and ``HttpOnly``; every unsafe
request authenticated by the cookie must echo the session's CSRF token in the
``X-CSRF-Token`` header (a cross-site page can neither read the token nor set the header
without a CORS preflight, which this API never grants); and a present ``Origin`` header must
name this server. The user row is looked up on every request, so disabling a user ends their
sessions at once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "fraudstream_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class SessionData:
    user: str
    csrf_token: str


class SessionCodec:
    """Signs and checks session cookies with a server secret; expired ones read as None."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="fraudstream-session")
        self.max_age_s = max_age_s

    def new(self, user: str) -> tuple[str, SessionData]:
        data = SessionData(user, secrets.token_urlsafe(32))
        return self._serializer.dumps({"u": data.user, "c": data.csrf_token}), data

    def read(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            raw = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:  # includes SignatureExpired
            return None
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("u", "c")):
            return None
        return SessionData(raw["u"], raw["c"])


def csrf_ok(expected: str, presented: str | None) -> bool:
    """Constant-time check of the echoed CSRF token."""
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())


def origin_ok(origin: str | None, host: str | None) -> bool:
    """A missing Origin is allowed (same-origin GETs, old clients); a present one must be ours."""
    if not origin:
        return True
    if origin == "null" or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
