"""The FastAPI application: routers, middleware, error mapping, and the shared resources'
lifecycle.

Handlers are plain (sync) functions run in the thread pool: psycopg's pool and the Kafka
producer are thread-safe, and blocking calls then never stall the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import structlog
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool, PoolTimeout

from fraudstream.api import health, metrics, registry_routes
from fraudstream.api.auth import routes as auth_routes
from fraudstream.api.auth import store
from fraudstream.api.auth.deps import Analyst
from fraudstream.api.auth.sessions import SessionCodec
from fraudstream.api.dashboard import routes as dashboard_routes
from fraudstream.api.labels import LabelPublisher, PublishError
from fraudstream.api.services import Services
from fraudstream.api.stats import routes as stats_routes
from fraudstream.api.stats.collector import StatsCollector
from fraudstream.api.transactions import routes as transaction_routes
from fraudstream.settings import Settings

log = structlog.get_logger(__name__)

SECURITY_HEADERS = {
    # No inline scripts or styles anywhere, nothing loaded from elsewhere, no framing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _session_secret(settings: Settings, pool: ConnectionPool[Any]) -> str:
    if settings.api_session_secret is not None:
        return settings.api_session_secret.get_secret_value()
    with pool.connection(timeout=30) as conn:
        return store.session_secret(conn)


def open_services(settings: Settings, collect_stats: bool = True) -> Services:
    pool: ConnectionPool[Any] = ConnectionPool(
        settings.dsn, min_size=1, max_size=8, kwargs={"autocommit": True, "connect_timeout": 5},
        name="fraudstream-api", open=True,
    )
    stats = StatsCollector(settings) if collect_stats else None
    if stats is not None:
        stats.start()
    return Services(
        settings=settings, pool=pool, labels=LabelPublisher(settings),
        admin=AdminClient({**settings.kafka_client_config(), "log_level": 3}),
        sessions=SessionCodec(_session_secret(settings, pool), settings.api_session_max_age_s),
        stats=stats,
    )


def close_services(svc: Services) -> None:
    if svc.stats is not None:
        svc.stats.stop()
        svc.stats.join(10)
    svc.labels.close()
    svc.pool.close()


def _unavailable(what: str) -> Any:
    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("api.unavailable", what=what, error=str(exc))
        return JSONResponse({"detail": f"{what} unavailable, try again"}, status_code=503,
                            headers={"Retry-After": "5"})
    return handler


async def _not_storable(_request: Request, exc: Exception) -> JSONResponse:
    """A value PostgreSQL cannot hold (e.g. a NUL character in JSON): the client's input."""
    return JSONResponse({"detail": f"value not accepted by the database: {exc}"}, status_code=422)


def create_app(settings: Settings, collect_stats: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = open_services(settings, collect_stats)
        app.state.services = svc
        log.info("api.started", stats=collect_stats)
        try:
            yield
        finally:
            close_services(svc)

    app = FastAPI(
        title="fraudstream", version="1", lifespan=lifespan,
        description="Suspicious transactions, analyst verdicts, rules, models and live statistics.",
        docs_url=None, redoc_url=None, openapi_url=None,  # the spec is served below, authenticated
    )
    for router in (health.router, metrics.router, auth_routes.router, transaction_routes.router,
                   registry_routes.router, stats_routes.router, dashboard_routes.router):
        app.include_router(router)
    dashboard_routes.mount_static(app)
    app.middleware("http")(metrics.observe)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_exception_handler(psycopg.DataError, _not_storable)
    app.add_exception_handler(PoolTimeout, _unavailable("database"))
    app.add_exception_handler(psycopg.OperationalError, _unavailable("database"))
    app.add_exception_handler(PublishError, _unavailable("Kafka (label not published, nothing changed)"))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_p: Analyst) -> JSONResponse:
        return JSONResponse(app.openapi())

    return app
