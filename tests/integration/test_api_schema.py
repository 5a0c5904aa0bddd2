"""Property-based tests of the running API from its own OpenAPI document (schemathesis):
whatever a client sends, as an admin, an analyst or nobody, the API never answers 5xx."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from fraudstream.api.app import create_app
from fraudstream.settings import Settings

from .api_support import ApiEnv, free_port, make_api_env, start_api, stop
from .conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiEnv, str, Path]]:
    api = make_api_env(infra, uuid.uuid4().hex[:8])
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    proc = start_api(api, log, port)
    try:
        yield api, f"http://127.0.0.1:{port}", log
    finally:
        stop(proc)


# The document is static: built from the application without starting it, so the cases can
# be parametrised at collection time; a test checks the server publishes the same document.
SPEC = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(copy.deepcopy(SPEC))
# Valid and invalid inputs alike: a 5xx for a malformed request is as much a bug.
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


def test_served_document_is_the_one_tested(served: tuple[ApiEnv, str, Path]) -> None:
    api, base, _ = served
    assert httpx.get(f"{base}/openapi.json", headers=api.auth(), timeout=10).json() == SPEC
    assert len(SPEC["paths"]) >= 15


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, served: tuple[ApiEnv, str, Path]) -> None:
    api, base, log = served
    for role in ("admin", "analyst"):
        case.call_and_validate(base_url=base, headers=api.auth(role), checks=[not_a_server_error])
    anonymous = case.call(base_url=base)
    assert anonymous.status_code < 500, log.read_text()[-3000:]
