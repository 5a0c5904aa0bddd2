"""Dashboard pages. The login page and static assets are public (they hold no data); the app
page needs a session and redirects to the login page otherwise. All data comes from the JSON
API, with the session cookie and the CSRF token."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from fraudstream.api.auth.deps import identify
from fraudstream.api.services import Services, services

router = APIRouter(include_in_schema=False)
STATIC = Path(str(resources.files("fraudstream.api.dashboard").joinpath("static")))


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/login")
def login_page() -> FileResponse:
    return FileResponse(STATIC / "login.html")


@router.get("/dashboard")
def dashboard(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    principal = identify(request, svc)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return FileResponse(STATIC / "app.html")
