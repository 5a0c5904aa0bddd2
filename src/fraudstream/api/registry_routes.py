"""``/api/v1/rules`` and ``/api/v1/models``: the two registries, through their own modules.

Reading is for analysts; uploading, activating and promoting is for admins. The detectors
pick up a newly active rule set or model by themselves (their watchers poll the registry).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field, model_validator

from fraudstream.api.auth.deps import Admin, Analyst
from fraudstream.api.services import Services, services
from fraudstream.learning import registry
from fraudstream.rules import store
from fraudstream.rules.model import RuleSetError

router = APIRouter(prefix="/api/v1", tags=["registry"])
Svc = Annotated[Services, Depends(services)]
Version = Annotated[int, Path(ge=1, le=2_147_483_647)]


class RuleSetOut(BaseModel):
    version: int
    name: str
    checksum: str
    active: bool
    created_at: datetime
    created_by: str | None
    n_rules: int


class RuleSetBody(RuleSetOut):
    body: dict[str, Any]


class RuleSetUpload(BaseModel):
    """A rule set as YAML/JSON ``text`` (what the dashboard uploads) or as a JSON ``body``."""

    text: str | None = Field(None, max_length=200_000)
    body: dict[str, Any] | None = None
    activate: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> RuleSetUpload:
        if (self.text is None) == (self.body is None):
            raise ValueError("give exactly one of 'text' and 'body'")
        return self


class ModelOut(BaseModel):
    version: int
    kind: str
    features: list[str]
    metrics: dict[str, Any]
    trained_from: datetime | None
    trained_to: datetime | None
    active: bool
    created_at: datetime
    promoted_at: datetime | None


@router.get("/rules", response_model=list[RuleSetOut], tags=["rules"])
def list_rules(svc: Svc, _p: Analyst) -> list[RuleSetOut]:
    """Every stored rule-set version, newest first; one is active."""
    with svc.db() as conn:
        return [RuleSetOut(**vars(i)) for i in store.list_rulesets(conn)]


@router.get("/rules/{version}", response_model=RuleSetBody, tags=["rules"],
            responses={404: {"description": "No such version"}})
def get_rules(version: Version, svc: Svc, _p: Analyst) -> RuleSetBody:
    """One version with its rules."""
    with svc.db() as conn:
        info = next((i for i in store.list_rulesets(conn) if i.version == version), None)
        ruleset = store.get_ruleset(conn, version) if info else None
    if info is None or ruleset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule set version")
    return RuleSetBody(**vars(info), body=ruleset.body())


@router.post("/rules", response_model=RuleSetOut, status_code=201, tags=["rules"],
             responses={422: {"description": "Invalid rule set (nothing stored)"}})
def upload_rules(upload: RuleSetUpload, svc: Svc, principal: Admin) -> RuleSetOut:
    """Validate and store a new version (optionally making it active at once)."""
    document: Any = upload.text if upload.text is not None else upload.body
    try:
        with svc.db() as conn:
            version = store.load_ruleset(conn, document, created_by=principal.name, activate=upload.activate)
            info = next(i for i in store.list_rulesets(conn) if i.version == version)
    except RuleSetError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return RuleSetOut(**vars(info))


@router.post("/rules/{version}/activate", response_model=RuleSetOut, tags=["rules"],
             responses={404: {"description": "No such version"}})
def activate_rules(version: Version, svc: Svc, _p: Admin) -> RuleSetOut:
    """Make a stored version the active one (also the way to roll back)."""
    try:
        with svc.db() as conn:
            store.activate(conn, version)
            info = next(i for i in store.list_rulesets(conn) if i.version == version)
    except RuleSetError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return RuleSetOut(**vars(info))


def _model_out(info: registry.ModelInfo) -> ModelOut:
    return ModelOut(**{k: v for k, v in vars(info).items() if k != "params"})


@router.get("/models", response_model=list[ModelOut], tags=["models"])
def list_models(svc: Svc, _p: Analyst) -> list[ModelOut]:
    """Every registered model with its evaluation metrics, newest first; one may be active."""
    with svc.db() as conn:
        return [_model_out(i) for i in registry.list_models(conn)]


@router.post("/models/{version}/promote", response_model=ModelOut, tags=["models"],
             responses={404: {"description": "No such version"}})
def promote_model(version: Version, svc: Svc, _p: Admin) -> ModelOut:
    """Make a registered model the active one (detectors hot-swap it)."""
    try:
        with svc.db() as conn:
            registry.promote(conn, version)
            info = next(i for i in registry.list_models(conn) if i.version == version)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return _model_out(info)
