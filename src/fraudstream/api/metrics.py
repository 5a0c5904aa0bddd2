"""The API's own Prometheus metrics and the ``/metrics`` endpoint.

Requests are labelled by route *template* (``/api/v1/transactions/{transaction_id}``), never
by raw path, so label cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from fraudstream.api.auth.deps import Analyst

REQUESTS = Counter("fraudstream_api_requests_total", "HTTP requests served", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "fraudstream_api_request_seconds", "HTTP request duration", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LABELS_PUBLISHED = Counter(
    "fraudstream_api_labels_published_total", "Analyst labels published to training", ["is_fraud"]
)

router = APIRouter(tags=["health"])


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: count and time every request."""
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = _route_of(request)
        REQUESTS.labels(request.method, route, str(status)).inc()
        REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(_p: Analyst) -> Response:
    """Prometheus exposition (authenticated: scrape with an API key as bearer token)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
