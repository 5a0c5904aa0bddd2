"""FastAPI dependencies that authenticate a request and enforce roles and CSRF.

``Authorization: Bearer fsk_…`` (or ``X-API-Key``) authenticates a script; the session cookie
authenticates a browser. Anything else is 401; a known caller without the role is 403. The
security schemes are declared so the OpenAPI document tells clients how to authenticate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from fraudstream.api.auth import store
from fraudstream.api.auth.keys import parse_key, secret_matches
from fraudstream.api.auth.principal import Principal, Role
from fraudstream.api.auth.sessions import COOKIE_NAME, CSRF_HEADER, SAFE_METHODS, csrf_ok, origin_ok
from fraudstream.api.services import Services, services

_bearer = HTTPBearer(auto_error=False, description="An API key: `fsk_<id>_<secret>`.")
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_cookie = APIKeyCookie(name=COOKIE_NAME, auto_error=False,
                       description="Browser session (unsafe methods also need X-CSRF-Token).")


def _from_key(svc: Services, token: str) -> Principal | None:
    parsed = parse_key(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    with svc.db() as conn:
        row = store.get_key(conn, key_id)
        if row is None or row.revoked or not secret_matches(secret, row.secret_sha256):
            return None
        store.touch_key(conn, key_id)
    return Principal(row.name, row.role, "api_key")


def _from_session(svc: Services, cookie: str) -> Principal | None:
    data = svc.sessions.read(cookie)
    if data is None:
        return None
    with svc.db() as conn:
        user = store.get_user(conn, data.user)
    if user is None or user.disabled:
        return None
    return Principal(user.name, user.role, "session", data.csrf_token)


def identify(request: Request, svc: Services) -> Principal | None:
    """The caller, or None; an API key wins over a cookie when both are sent."""
    header = request.headers.get("authorization", "")
    token = header[7:] if header[:7].lower() == "bearer " else request.headers.get("x-api-key")
    if token:
        return _from_key(svc, token)
    cookie = request.cookies.get(COOKIE_NAME)
    return _from_session(svc, cookie) if cookie else None


def _unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required",
                         headers={"WWW-Authenticate": "Bearer"})


def authenticated(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    _b: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    _k: Annotated[str | None, Depends(_key_header)] = None,
    _c: Annotated[str | None, Depends(_cookie)] = None,
) -> Principal:
    """Any authenticated caller; sessions must pass the CSRF checks on unsafe methods."""
    principal = identify(request, svc)
    if principal is None:
        raise _unauthorized()
    if principal.via == "session" and request.method not in SAFE_METHODS:
        if not origin_ok(request.headers.get("origin"), request.headers.get("host")):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")
        if not csrf_ok(principal.csrf_token or "", request.headers.get(CSRF_HEADER)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER} header")
    request.state.principal = principal
    return principal


def require(least: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting callers whose role is at least ``least``."""

    def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if not principal.has(least):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {least} role")
        return principal

    return check


Analyst = Annotated[Principal, Depends(require("analyst"))]
Admin = Annotated[Principal, Depends(require("admin"))]
