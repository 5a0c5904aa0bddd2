"""API keys: ``fsk_<key id>_<secret>``.

The key id is public (it finds the row); only the SHA-256 of the secret is stored. A fast hash
is right here, unlike for passwords: the secret is 256 random bits, so there is nothing to
brute-force, and each API request can afford to check it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "fsk"
_PATTERN = re.compile(r"^fsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        """What the client sends (shown once, never stored)."""
        return f"{PREFIX}_{self.key_id}_{self.secret}"

    @property
    def secret_sha256(self) -> str:
        return hash_secret(self.secret)


def generate_key() -> NewKey:
    return NewKey(secrets.token_hex(8), secrets.token_urlsafe(32))


def parse_key(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed token, else None."""
    match = _PATTERN.match(token.strip())
    return None if match is None else (match.group(1), match.group(2))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_sha256: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_sha256)
