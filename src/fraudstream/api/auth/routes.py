"""``/api/v1/auth``: log in (sets the session cookie), log out, who am I (and my CSRF token)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from fraudstream.api.auth import store
from fraudstream.api.auth.deps import authenticated
from fraudstream.api.auth.passwords import verify_password
from fraudstream.api.auth.principal import Principal, Role
from fraudstream.api.auth.sessions import COOKIE_NAME
from fraudstream.api.auth.throttle import LoginThrottle
from fraudstream.api.services import Services, services

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
throttle = LoginThrottle()


class Credentials(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    name: str
    role: Role
    via: str
    csrf_token: str | None = Field(None, description="Echo it in X-CSRF-Token on unsafe requests.")


def _me(p: Principal) -> Me:
    return Me(name=p.name, role=p.role, via=p.via, csrf_token=p.csrf_token)


@router.post("/login", response_model=Me, responses={
    401: {"description": "Wrong name or password"}, 429: {"description": "Too many failed attempts"}})
def login(creds: Credentials, request: Request, response: Response,
          svc: Annotated[Services, Depends(services)]) -> Me:
    """Check a user's password and start a browser session (HttpOnly, SameSite=Strict cookie).

    JSON only (FastAPI refuses other content types), so a cross-site HTML form cannot log a
    victim into an attacker's account.
    """
    client = request.client.host if request.client else "-"
    wait = throttle.retry_after(creds.name, client)
    if wait > 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed attempts, try later",
                            headers={"Retry-After": str(int(wait) + 1)})
    with svc.db() as conn:
        user = store.get_user(conn, creds.name)
    ok = verify_password(user.password_hash if user else None, creds.password)
    if user is None or not ok or user.disabled:
        throttle.failed(creds.name, client)
        log.info("api.login.failed", user=creds.name, client=client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong name or password")
    throttle.succeeded(creds.name, client)
    cookie, data = svc.sessions.new(user.name)
    response.set_cookie(
        COOKIE_NAME, cookie, max_age=svc.sessions.max_age_s, httponly=True, samesite="strict",
        secure=svc.settings.api_secure_cookies, path="/",
    )
    log.info("api.login", user=user.name, role=user.role)
    return Me(name=user.name, role=user.role, via="session", csrf_token=data.csrf_token)


@router.post("/logout", status_code=204)
def logout(response: Response, _p: Annotated[Principal, Depends(authenticated)]) -> Response:
    """End the browser session (clears the cookie)."""
    response.status_code = 204
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=Me)
def me(principal: Annotated[Principal, Depends(authenticated)]) -> Me:
    """The caller's name and role, and (for sessions) the CSRF token the dashboard echoes."""
    return _me(principal)
