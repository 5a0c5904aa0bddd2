"""The authenticated caller and the two roles.

Roles are ordered: an ``admin`` may do everything an ``analyst`` may (read and label) and also
manage rules and models. Keeping the order in one place means a new endpoint only states the
least role it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["analyst", "admin"]
ROLES: tuple[Role, ...] = ("analyst", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    """A caller that proved who it is, by session cookie or by API key."""

    name: str
    role: Role
    via: Literal["session", "api_key"]
    csrf_token: str | None = None  # sessions only: what unsafe requests must echo back

    def has(self, least: Role) -> bool:
        """Whether this caller's role is at least ``least``."""
        return _RANK[self.role] >= _RANK[least]
