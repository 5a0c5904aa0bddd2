"""Secrets out of anything printed or logged: connection strings lose their passwords."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked (URL or ``key=value`` form); host, port, user and
    database stay, since they are what an operator needs to read."""
    if "://" not in dsn:
        return _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)
    parts = urlsplit(dsn)
    parts = parts._replace(query=_QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, parts.query))
    if parts.password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:{MASK}@{hostinfo}")
    return urlunsplit(parts)
