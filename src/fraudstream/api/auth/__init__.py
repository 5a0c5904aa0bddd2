"""Who is calling: users with passwords (browser sessions) and API keys, each with a role."""

from fraudstream.api.auth.principal import ROLES, Principal, Role

__all__ = ["ROLES", "Principal", "Role"]
