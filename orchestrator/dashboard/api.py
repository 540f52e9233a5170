"""`dashboard_router`: the dashboard page and the JSON stats endpoints behind an admin check.

Every `/v1/stats/...` endpoint takes the filters `since`, `until` (ISO 8601; naive means
UTC), `tenant` and `route` (the cascade route key), and answers with the range it covers.
Bad parameters are 400s in OpenAI's error shape (raised as `InvalidRequest`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from orchestrator.dashboard import stats_daily, stats_hourly, stats_queries, stats_versions
from orchestrator.dashboard.scope import Scope, ScopeError
from orchestrator.dashboard.source import (
    PolicySource,
    StatsSource,
    StatsUnavailable,
    threshold_lookup,
)
from orchestrator.errors import Forbidden, InvalidRequest, NotFound, ServiceUnavailable
from orchestrator.ledger.rollup import TOP_K

STATIC_TYPES = {
    "charts.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
STEPS = ("auto", "hour", "day")


def _time(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"{name}: {value!r} is not an ISO 8601 time, e.g. 2025-01-31T00:00:00Z", param=name
        ) from None


def scope_of(
    since: str | None = None,
    until: str | None = None,
    tenant: str | None = None,
    route: str | None = None,
) -> Scope:
    """The common filters, as a FastAPI dependency."""
    try:
        return Scope.parse(_time("since", since), _time("until", until), tenant, route)
    except ScopeError as exc:
        raise InvalidRequest(exc.message, param=exc.param) from None


@contextmanager
def stats_connection(source: StatsSource) -> Iterator[sa.Connection]:
    """`source.connect()`, with a database that cannot answer as a 503."""
    try:
        with source.connect() as connection:
            yield connection
    except StatsUnavailable as exc:
        raise ServiceUnavailable(exc.message, code=exc.code) from exc


Filters = Annotated[Scope, Depends(scope_of)]


def _step(step: str) -> str:
    if step not in STEPS:
        raise InvalidRequest(f"step: use one of {', '.join(STEPS)}", param="step")
    return step


def _limit(limit: str) -> int:
    if not limit.isdigit() or not 1 <= int(limit) <= TOP_K:
        raise InvalidRequest(f"limit: a whole number from 1 to {TOP_K}", param="limit")
    return int(limit)


def _threshold(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise InvalidRequest("threshold: a number from 0 to 1", param="threshold")
    return number


def admin_check(authorize: Callable[[Request], Any]) -> Callable[[Request], Awaitable[None]]:
    """`authorize` (sync or async) raises Unauthorized (401) for a missing or unknown key and
    returns the caller (anything with `.admin`) or a bool; a non-admin caller gets 403."""

    async def check(request: Request) -> None:
        caller = authorize(request)
        if inspect.isawaitable(caller):
            caller = await caller
        allowed = caller.admin if hasattr(caller, "admin") else bool(caller)
        if not allowed:
            raise Forbidden("The dashboard and stats need an admin API key.")

    return check


def dashboard_router(
    source: StatsSource,
    *,
    authorize: Callable[[Request], Any],
    policy: PolicySource,
) -> APIRouter:
    """Routes: GET /dashboard (the page, no key needed: it holds no data),
    GET /dashboard/static/{name}, and GET /v1/stats/{filters,summary,cost,escalations,
    confidence,whatif,router,latency,expensive,latest-escalations,adapter-versions}
    (admin key)."""
    thresholds = threshold_lookup(policy)
    router = APIRouter()
    admin = [Depends(admin_check(authorize))]
    _page_routes(router)

    @router.get("/v1/stats/filters", dependencies=admin)
    def filters() -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_hourly.filter_options(connection)

    @router.get("/v1/stats/summary", dependencies=admin)
    def summary(scope: Filters) -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_hourly.summary(connection, scope)

    @router.get("/v1/stats/cost", dependencies=admin)
    def cost(scope: Filters, step: str = "auto") -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_hourly.cost_series(connection, scope, _step(step))

    @router.get("/v1/stats/escalations", dependencies=admin)
    def escalations(scope: Filters, step: str = "auto") -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_hourly.escalation_series(connection, scope, _step(step))

    @router.get("/v1/stats/router", dependencies=admin)
    def router_mix(scope: Filters) -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_hourly.router_mix(connection, scope)

    _daily_routes(router, source, thresholds, admin)
    return router


def _daily_routes(
    router: APIRouter,
    source: StatsSource,
    thresholds: Callable[[str], float | None],
    admin: list[Any],
) -> None:
    """Routes over the daily rollups and the top-k tables."""

    @router.get("/v1/stats/confidence", dependencies=admin)
    def confidence(scope: Filters) -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_daily.confidence(connection, scope, thresholds)

    @router.get("/v1/stats/whatif", dependencies=admin)
    def whatif(scope: Filters, threshold: str | None = None) -> dict[str, Any]:
        if scope.route is None:
            raise InvalidRequest("route: the what-if projection needs a route", param="route")
        chosen = _threshold(threshold)
        with stats_connection(source) as connection:
            return stats_daily.what_if(connection, scope, scope.route, chosen, thresholds)

    @router.get("/v1/stats/latency", dependencies=admin)
    def latency(scope: Filters) -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_daily.latency(connection, scope)

    @router.get("/v1/stats/expensive", dependencies=admin)
    def expensive(scope: Filters, limit: str = "20") -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_queries.expensive(connection, scope, _limit(limit))

    @router.get("/v1/stats/adapter-versions", dependencies=admin)
    def adapter_versions(scope: Filters) -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_versions.adapter_versions(connection, scope)

    @router.get("/v1/stats/latest-escalations", dependencies=admin)
    def latest(scope: Filters, limit: str = "20") -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_queries.latest_escalations(connection, scope, _limit(limit))


def _asset(name: str) -> str:
    return resources.files("orchestrator.dashboard").joinpath("static", name).read_text("utf-8")


def _page_routes(router: APIRouter) -> None:
    @router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_asset("dashboard.html"), headers={"Cache-Control": "no-cache"})

    @router.get("/dashboard/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_TYPES:
            raise NotFound(f"No dashboard asset named {name!r}.")
        return Response(_asset(name), media_type=STATIC_TYPES[name])
