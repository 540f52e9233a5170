"""Tenant isolation through the real FastAPI app and SQLite ledger (in-process models).

For every ordered pair (A, B) of tenants: A cannot use B's private adapter (the 404 reads as
for a model that does not exist), cannot read or give feedback on B's ledger rows, and cannot
see B in stats. A's router label resolves to A's own adapter. Rate limits and budgets answer
429 with a ledger row, and show up in /v1/stats/tenants."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.config import validate_config_dict
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG, FakeModels, in_process_app

MSG = [{"role": "user", "content": "is this contract valid?"}]
TENANTS = {  # name -> (key, own adapter for the router label "legal")
    "acme": ("key-acme", "acme-legal"),
    "beta": ("key-beta", "beta-legal"),
    "gamma": ("key-gamma", None),
}
PAIRS = list(itertools.permutations(TENANTS, 2))
ADAPTER_PAIRS = [(tenant, owner) for tenant, owner in PAIRS if TENANTS[owner][1]]
ROOT = {"Authorization": "Bearer key-root"}
QUERY_COST = Decimal("0.000106")  # 100 prompt tokens at $1/M + 3 completion tokens at $2/M


def auth(tenant: str) -> dict[str, str]:
    key = {"capped": "key-capped", "broke": "key-broke"}.get(tenant) or TENANTS[tenant][0]
    return {"Authorization": f"Bearer {key}"}


def config_data(tmp_path: Path) -> dict[str, Any]:
    data = json.loads(json.dumps(CONFIG))
    data["ledger"] = {"url": f"sqlite:///{tmp_path / 'ledger.db'}"}
    data["small"]["engine"]["adapters"].update(
        {"acme-legal": "/a/acme-legal", "beta-legal": "/a/beta-legal"}
    )
    data["tenants"] = [
        {"name": name, "api_keys": [key], "adapters": {"legal": own} if own else {}}
        for name, (key, own) in TENANTS.items()
    ]
    data["tenants"] += [
        {"name": "root", "api_keys": ["key-root"], "admin": True},
        {"name": "capped", "api_keys": ["key-capped"], "requests_per_minute": 2},
        {"name": "broke", "api_keys": ["key-broke"], "monthly_budget_usd": "0.0002"},
    ]
    return data


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Ledger, FakeModels]]:
    config = validate_config_dict(config_data(tmp_path_factory.mktemp("tenants")))
    models = FakeModels(0.95, {"label": "legal", "probability": 0.8, "abstained": False})
    with in_process_app(config, models) as (client, ledger):
        yield client, ledger, models


def chat(client: TestClient, tenant: str, model: str = "auto", stream: bool = False) -> Any:
    body = {"model": model, "messages": MSG, "stream": stream}
    return client.post("/v1/chat/completions", json=body, headers=auth(tenant))


def asked_adapters(models: FakeModels) -> list[str | None]:
    """The adapters the small model was asked for, by name (the registry versions them:
    a config's adapter is `name@1`)."""
    names = [request.adapter for _, request in models.calls]
    assert all(name is None or name.endswith("@1") for name in names), names
    return [name.partition("@")[0] if name else None for name in names]


def without(error: dict[str, Any], name: str) -> dict[str, Any]:
    return {**error, "message": error["message"].replace(name, "<name>")}


# ----- adapters ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tenant", list(TENANTS))
def test_router_label_resolves_to_the_tenants_own_adapter(app: Any, tenant: str) -> None:
    client, _, models = app
    models.calls.clear()
    response = chat(client, tenant)
    assert response.status_code == 200
    expected = TENANTS[tenant][1] or "legal"  # own adapter, else the shared one
    assert response.json()["spillway"]["adapter"] == expected
    assert response.headers["x-spillway-adapter"] == expected
    assert asked_adapters(models) == [expected]


@pytest.mark.parametrize(("tenant", "owner"), ADAPTER_PAIRS)
@pytest.mark.parametrize("stream", [False, True])
def test_another_tenants_adapter_does_not_exist(
    app: Any, tenant: str, owner: str, stream: bool
) -> None:
    client, _, models = app
    private = str(TENANTS[owner][1])
    models.calls.clear()
    taken = chat(client, tenant, private, stream)
    unknown = chat(client, tenant, "no-such-adapter", stream)
    assert taken.status_code == unknown.status_code == 404
    assert without(taken.json()["error"], private) == without(
        unknown.json()["error"], "no-such-adapter"
    )
    assert taken.json()["error"]["code"] == "model_not_found"
    assert private not in taken.json()["error"]["message"].split("Available:")[1]
    assert models.calls == []  # no model ran
    own = chat(client, owner, private, stream)
    assert own.status_code == 200  # the owner can use it


@pytest.mark.parametrize(("tenant", "owner"), PAIRS)
def test_models_list_shows_own_and_shared_adapters_only(app: Any, tenant: str, owner: str) -> None:
    client, _, _ = app
    listed = {m["id"] for m in client.get("/v1/models", headers=auth(tenant)).json()["data"]}
    own = TENANTS[tenant][1]
    assert listed == {"auto", "small", "legal", "large"} | ({own} if own else set())
    assert TENANTS[owner][1] not in listed


# ----- ledger rows -------------------------------------------------------------------------------
@pytest.mark.parametrize(("tenant", "owner"), PAIRS)
def test_another_tenants_rows_do_not_exist(app: Any, tenant: str, owner: str) -> None:
    client, ledger, _ = app
    query_id = chat(client, owner).json()["spillway"]["query_id"]
    ledger.flush()
    assert client.get(f"/v1/queries/{query_id}", headers=auth(owner)).status_code == 200
    theirs = client.get(f"/v1/queries/{query_id}", headers=auth(tenant))
    missing = client.get("/v1/queries/q-missing", headers=auth(tenant))
    assert theirs.status_code == missing.status_code == 404
    assert without(theirs.json()["error"], query_id) == without(
        missing.json()["error"], "q-missing"
    )
    feedback = {"query_id": query_id, "score": 1.0}
    refused = client.post("/v1/feedback", json=feedback, headers=auth(tenant))
    assert refused.status_code == 404
    assert ledger.feedback(query_id) == []
    assert client.post("/v1/feedback", json=feedback, headers=auth(owner)).status_code == 200
    assert client.get(f"/v1/queries/{query_id}", headers=ROOT).status_code == 200  # admin


# ----- stats -------------------------------------------------------------------------------------
STATS = ["summary", "filters", "cost", "expensive", "latest-escalations", "tenants"]


@pytest.mark.parametrize(("tenant", "owner"), PAIRS)
def test_stats_of_another_tenant_are_not_visible(app: Any, tenant: str, owner: str) -> None:
    client, ledger, _ = app
    chat(client, owner)
    ledger.flush()
    for path in STATS:
        for query in ("", f"?tenant={owner}"):
            response = client.get(f"/v1/stats/{path}{query}", headers=auth(tenant))
            assert response.status_code == 403, path
            assert owner not in response.text
    usage = client.get("/v1/usage", headers=auth(tenant))
    assert usage.status_code == 200 and usage.json()["tenant"] == tenant
    assert owner not in usage.text
    assert client.get(f"/v1/usage?tenant={owner}", headers=auth(tenant)).json()["tenant"] == tenant
    seen = client.get(f"/v1/stats/summary?tenant={owner}", headers=ROOT)
    assert seen.status_code == 200 and seen.json()["queries"] >= 1  # the admin sees all


# ----- limits ------------------------------------------------------------------------------------
def test_rate_limit_answers_429_and_writes_a_row(app: Any) -> None:
    client, ledger, models = app
    assert [chat(client, "capped").status_code for _ in range(2)] == [200, 200]
    models.calls.clear()
    refused = chat(client, "capped")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "2 requests per minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert models.calls == []
    ledger.flush()
    row = ledger.get(refused.headers["x-spillway-query-id"])
    assert row is not None
    assert (row["tenant"], row["http_status"], row["error_type"]) == (
        "capped",
        429,
        "rate_limit_exceeded",
    )
    assert row["cost_usd"] == 0
    assert chat(client, "gamma").status_code == 200  # other tenants are not limited


def test_budget_answers_429_and_shows_on_the_tenants_panel(app: Any) -> None:
    client, ledger, models = app
    assert [chat(client, "broke").status_code for _ in range(2)] == [200, 200]  # 0.000212 spent
    models.calls.clear()
    refused = chat(client, "broke")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("insufficient_quota", "insufficient_quota")
    assert "monthly budget of $0.0002" in error["message"] and "spent $0.000212" in error["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert models.calls == []
    ledger.flush()
    row = ledger.get(refused.headers["x-spillway-query-id"])
    assert row is not None and (row["http_status"], row["error_type"]) == (
        429,
        "insufficient_quota",
    )
    panel = client.get("/v1/stats/tenants", headers=ROOT).json()
    line = {t["tenant"]: t for t in panel["tenants"]}["broke"]
    assert line["monthly_budget_usd"] == 0.0002
    assert Decimal(str(line["spent_usd"])) == 2 * QUERY_COST
    assert line["budget_used"] == pytest.approx(1.06)
    assert line["queries"] == 3 and line["rejected"] == {"rate_limit": 0, "budget": 1}
    own = client.get("/v1/usage", headers=auth("broke")).json()
    assert own["rejected"] == {"rate_limit": 0, "budget": 1} and own["queries"] == 3
    assert panel["month"]["since"].endswith("-01T00:00:00Z")


def test_tenants_panel_lists_every_tenant_for_the_admin(app: Any) -> None:
    client, _, _ = app
    panel = client.get("/v1/stats/tenants", headers=ROOT).json()
    assert [t["tenant"] for t in panel["tenants"]] == [*TENANTS, "root", "capped", "broke"]
    capped = {t["tenant"]: t for t in panel["tenants"]}["capped"]
    assert capped["requests_per_minute"] == 2 and capped["monthly_budget_usd"] is None
    one = client.get("/v1/stats/tenants?tenant=acme", headers=ROOT).json()
    assert [t["tenant"] for t in one["tenants"]] == ["acme"]
    gone = client.get("/v1/stats/tenants?tenant=nobody", headers=ROOT)  # e.g. a past tenant
    assert gone.status_code == 200 and gone.json()["tenants"] == []
