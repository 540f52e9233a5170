"""Every stats endpoint over the sample ledger (orchestrator/dashboard/sample.py), against
values computed by hand from its table; and the admin check, the page, bad parameters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.testclient import TestClient

from orchestrator.dashboard import StatsSource, dashboard_router
from orchestrator.errors import SpillwayError, Unauthorized
from orchestrator.ledger import Ledger
from tests import dashboard_sample as sample
from tests.postgres import postgres_server  # noqa: F401

DAY = datetime(2025, 3, 1, tzinfo=UTC)
ADMIN = {"Authorization": "Bearer admin-key"}
USER = {"Authorization": "Bearer user-key"}
ENDPOINTS = [
    "filters", "summary", "cost", "escalations", "router", "confidence",
    "whatif?route=math", "latency", "expensive", "latest-escalations",
]  # fmt: skip


class Caller:
    def __init__(self, admin: bool):
        self.name, self.admin = "t", admin


def authorize(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    if header == ADMIN["Authorization"]:
        return Caller(True)
    if header == USER["Authorization"]:
        return Caller(False)
    raise Unauthorized("Incorrect API key provided.")


def make_app(url: str) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(SpillwayError)
    async def _error(_: Request, exc: SpillwayError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    app.include_router(
        dashboard_router(StatsSource(url), authorize=authorize, policy=sample.THRESHOLDS)
    )
    return app


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('ledger')) / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    with Ledger(url) as ledger:
        sample.seed(ledger, DAY)
    with TestClient(make_app(url)) as test_client:
        yield test_client


def get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/stats/{path}", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_summary(client: TestClient) -> None:
    s = get(client, "summary")
    assert (s["queries"], s["errors"], s["escalated"]) == (10, 1, 4)
    assert s["escalation_rate"] == pytest.approx(0.4)
    assert s["cost_usd"] == pytest.approx(0.127)
    assert s["baseline_cost_usd"] == pytest.approx(0.186)
    assert s["savings_usd"] == pytest.approx(0.059)
    assert s["savings_rate"] == pytest.approx(0.059 / 0.186)
    assert s["cost_small_usd"] == pytest.approx(0.012)
    assert s["cost_large_usd"] == pytest.approx(0.115)
    assert s["tokens"] == {
        "small": {"prompt": 700, "completion": 350},
        "large": {"prompt": 500, "completion": 250},
    }


@pytest.mark.parametrize(
    ("params", "queries", "cost"),
    [
        ({"tenant": "beta"}, 4, 0.048),
        ({"route": "math"}, 6, 0.092),
        ({"route": "code"}, 3, 0.015),
        ({"route": "base"}, 1, 0.020),
        ({"since": "2025-03-02T10:15:00Z"}, 4, 0.056),  # snaps to 10:00: q-b3 counts
        ({"since": "2025-03-01T02:00:00Z", "until": "2025-03-01T03:00:00Z"}, 2, 0.014),
        ({"until": "2025-03-01T01:30:00+01:00"}, 0, 0.0),  # 00:30 UTC, snaps to 01:00
    ],
)
def test_summary_filters(
    client: TestClient, params: dict[str, str], queries: int, cost: float
) -> None:
    s = get(client, "summary", **params)
    assert s["queries"] == queries
    assert s["cost_usd"] == pytest.approx(cost)


def test_cost_series(client: TestClient) -> None:
    days = get(client, "cost")
    assert days["step"] == "day"
    assert [(p["t"], p["queries"]) for p in days["points"]] == [
        ("2025-03-01T00:00:00Z", 6),
        ("2025-03-02T00:00:00Z", 4),
    ]
    assert [p["cost_usd"] for p in days["points"]] == pytest.approx([0.071, 0.056])
    assert [p["baseline_cost_usd"] for p in days["points"]] == pytest.approx([0.122, 0.064])
    assert [p["savings_usd"] for p in days["points"]] == pytest.approx([0.051, 0.008])
    hours = get(client, "cost", since="2025-03-01T00:00:00Z", until="2025-03-02T00:00:00Z")
    assert hours["step"] == "hour"  # auto: a range of 3 days or less
    assert [p["t"][11:13] for p in hours["points"]] == ["01", "02", "03"]
    assert [p["cost_usd"] for p in hours["points"]] == pytest.approx([0.034, 0.014, 0.023])


def test_escalations(client: TestClient) -> None:
    e = get(client, "escalations", step="day")
    assert [(p["queries"], p["escalated"]) for p in e["points"]] == [(6, 2), (4, 2)]
    assert [p["escalation_rate"] for p in e["points"]] == pytest.approx([1 / 3, 0.5])
    by_route = [
        (g["route"], g["adapter"], g["queries"], g["escalated"], g["reasons"])
        for g in e["by_route"]
    ]
    assert by_route == [
        ("math", "math", 6, 3, {"low_confidence": 2, "predicted_hard": 1}),
        ("code", "code", 2, 0, {}),
        ("base", None, 1, 0, {}),
        ("code", None, 1, 1, {"low_confidence": 1}),
    ]


def test_router_mix(client: TestClient) -> None:
    r = get(client, "router")
    assert (r["queries"], r["routed"], r["unrouted"], r["abstained"]) == (10, 9, 1, 1)
    assert r["abstention_rate"] == pytest.approx(1 / 9)
    labels = [(x["label"], x["queries"], x["abstained"]) for x in r["labels"]]
    assert labels == [("math", 6, 0), ("code", 3, 1)]
    assert [x["share"] for x in r["labels"]] == pytest.approx([6 / 9, 3 / 9])
    versions = [(v["router_version"], v["queries"], v["first_seen"]) for v in r["versions"]]
    # all time reads whole days from the daily rollup: first seen on the day
    assert versions == [("v1", 5, "2025-03-01T00:00:00Z"), ("v2", 4, "2025-03-02T00:00:00Z")]
    since = get(client, "router", since="2025-03-01T01:30:00Z")["versions"]
    assert [(v["first_seen"], v["last_seen"]) for v in since] == [
        ("2025-03-01T01:00:00Z", "2025-03-01T03:00:00Z"),  # hours of the partial first day
        ("2025-03-02T00:00:00Z", "2025-03-02T00:00:00Z"),  # then whole days
    ]


def test_confidence(client: TestClient) -> None:
    c = get(client, "confidence")
    routes = {r["route"]: r for r in c["routes"]}
    assert set(routes) == {"code", "math"}  # q-b4's difficulty score is not an answer's
    nonzero = {name: {i: n for i, n in enumerate(r["bins"]) if n} for name, r in routes.items()}
    assert nonzero == {"code": {55: 1, 66: 1, 91: 1}, "math": {35: 1, 58: 1, 75: 1, 82: 1}}
    escalated = {
        name: [i for i, n in enumerate(r["escalated_bins"]) if n] for name, r in routes.items()
    }
    assert escalated == {"code": [55], "math": [35, 58]}
    assert routes["math"]["threshold"] == 0.6


def test_whatif_at_current_threshold_matches_the_log(client: TestClient) -> None:
    w = get(client, "whatif", route="math")
    assert w["current_threshold"] == 0.6
    assert w["actual"] == {
        "queries": 6,
        "escalated": 3,
        "escalation_rate": 0.5,
        "cost_usd": pytest.approx(0.092),
    }
    p = w["projected"]
    assert (p["threshold"], p["escalated"], p["queries"]) == (0.6, 3, 6)
    assert p["cost_usd"] == pytest.approx(0.092)
    # Large answers in bins 35 (0.5) and 58 (1.0); b1's small answer: the small mean (1.0).
    assert p["quality"] == pytest.approx((0.5 + 1.0 + 1.0 + 1.0) / 4)
    assert p["quality_coverage"] == pytest.approx(0.75)
    assert w["with_confidence"] == 4
    assert w["feedback"] == {"small": 1, "large": 2}
    assert len(w["curve"]) == 101


@pytest.mark.parametrize(
    ("threshold", "escalated", "cost", "quality", "coverage"),
    [
        # 0.9: all four answers escalate: small .009 + baselines .108 + q-b4 .025.
        ("0.9", 5, 0.142, (0.5 + 1.0 + 0.75 + 0.75) / 4, 0.5),
        # 0.3: none escalates but q-b4 (predicted hard): .009 + .025.
        ("0.3", 1, 0.034, 1.0, 0.25),
        # 0.58 keeps q-a5 (confidence 0.58 is not below 0.58).
        ("0.58", 2, 0.009 + 0.030 + 0.025, (0.5 + 1.0 + 1.0 + 1.0) / 4, 0.5),
    ],
)
def test_whatif_projection(
    client: TestClient, threshold: str, escalated: int, cost: float, quality: float, coverage: float
) -> None:
    p = get(client, "whatif", route="math", threshold=threshold)["projected"]
    assert p["escalated"] == escalated
    assert p["escalation_rate"] == pytest.approx(escalated / 6)
    assert p["cost_usd"] == pytest.approx(cost)
    assert p["quality"] == pytest.approx(quality)
    assert p["quality_coverage"] == pytest.approx(coverage)


def test_latency(client: TestClient) -> None:
    stages = {s["stage"]: s for s in get(client, "latency")["stages"]}
    assert {k: s["count"] for k, s in stages.items()} == {
        "router": 8,
        "small": 7,
        "large": 5,
        "total": 10,
    }
    assert stages["router"]["mean_ms"] == pytest.approx(41 / 8)
    assert stages["large"]["mean_ms"] == pytest.approx(870)
    # Router latencies 4,4,5,5,5,5 lie in bin [10^0.6, 10^0.7) ms; the median is rank 4 of 6
    # in it, interpolated: 3.9811 + (5.0119 - 3.9811) * 4 / 6.
    assert stages["router"]["p50"] == pytest.approx(3.9811 + (5.0119 - 3.9811) * 4 / 6, abs=1e-3)
    for stage in stages.values():
        assert stage["p50"] <= stage["p90"] <= stage["p95"] <= stage["p99"]


def test_expensive(client: TestClient) -> None:
    rows = get(client, "expensive", limit="4")["queries"]
    assert [r["query_id"] for r in rows] == ["q-a2", "q-a5", "q-b4", "q-b2"]
    assert [r["cost_usd"] for r in rows] == pytest.approx([0.032, 0.030, 0.025, 0.020])
    assert rows[0]["url"] == "/v1/queries/q-a2"
    beta = get(client, "expensive", tenant="beta", limit="10")["queries"]
    assert [r["query_id"] for r in beta] == ["q-b4", "q-b2", "q-b1", "q-b3"]


def test_latest_escalations(client: TestClient) -> None:
    rows = get(client, "latest-escalations")["queries"]
    assert [r["query_id"] for r in rows] == ["q-a5", "q-b4", "q-a4", "q-a2"]
    assert rows[0]["escalation_reason"] == "low_confidence"
    code = get(client, "latest-escalations", route="code")["queries"]
    assert [r["query_id"] for r in code] == ["q-a4"]
    assert [r["query_id"] for r in get(client, "latest-escalations", limit="1")["queries"]] == [
        "q-a5"
    ]


def test_query_lists_flag_degraded_answers_and_faults(tmp_path: Path) -> None:
    """A degraded answer (the large model failed after a low-confidence small answer) is
    marked in the lists, with the deployments that failed."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    rows = sample.rows(DAY)
    degraded = {"degraded": True, "faults": "large", "cost_large_usd": 0, "cost_usd": 0.002}
    rows = [r.model_copy(update=degraded) if r.query_id == "q-a5" else r for r in rows]
    with Ledger(url) as ledger:
        for row in rows:
            ledger.record(row)
        assert ledger.flush(30)
    with TestClient(make_app(url)) as client:
        listed = {r["query_id"]: r for r in get(client, "latest-escalations")["queries"]}
    assert (listed["q-a5"]["degraded"], listed["q-a5"]["faults"]) == (True, "large")
    assert {(r["degraded"], r["faults"]) for q, r in listed.items() if q != "q-a5"} == {
        (False, None)
    }


def test_filter_options(client: TestClient) -> None:
    f = get(client, "filters")
    assert f == {
        "tenants": ["acme", "beta"],
        "routes": ["base", "code", "math"],
        "first_hour": "2025-03-01T01:00:00Z",
        "last_hour": "2025-03-02T13:00:00Z",
    }


@pytest.mark.parametrize("path", ENDPOINTS)
def test_key_required(client: TestClient, path: str) -> None:
    missing = client.get(f"/v1/stats/{path}")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    wrong = client.get(f"/v1/stats/{path}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    forbidden = client.get(f"/v1/stats/{path}", headers=USER)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("summary?since=yesterday", "since"),
        ("summary?since=2025-03-02T00:00:00Z&until=2025-03-01T00:00:00Z", "since"),
        ("cost?step=week", "step"),
        ("expensive?limit=0", "limit"),
        ("expensive?limit=51", "limit"),
        ("whatif?route=math&threshold=1.5", "threshold"),
        ("whatif", "route"),
    ],
)
def test_bad_parameters(client: TestClient, path: str, param: str) -> None:
    response = client.get(f"/v1/stats/{path}", headers=ADMIN)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_page_and_assets_need_no_key(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "/dashboard/static/dashboard.js" in page.text
    for name in ("dashboard.js", "charts.js", "dashboard.css"):
        assert client.get(f"/dashboard/static/{name}").status_code == 200
    assert client.get("/dashboard/static/secrets.txt").status_code == 404
    for name in ("dashboard.js", "charts.js", "dashboard.css"):  # nothing loads from elsewhere
        text = client.get(f"/dashboard/static/{name}").text + page.text
        assert "://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_async_authorize_is_awaited(tmp_path: Path) -> None:
    async def tenant_key(request: Request) -> Caller:
        return Caller(admin=request.headers.get("authorization") == ADMIN["Authorization"])

    app = FastAPI()

    @app.exception_handler(SpillwayError)
    async def _error(_: Request, exc: SpillwayError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url):
        pass
    app.include_router(dashboard_router(StatsSource(url), authorize=tenant_key, policy={"*": 0.5}))
    with TestClient(app) as test_client:
        assert test_client.get("/v1/stats/summary", headers=USER).status_code == 403
        empty = test_client.get("/v1/stats/summary", headers=ADMIN).json()
        assert (empty["queries"], empty["escalation_rate"]) == (0, None)
