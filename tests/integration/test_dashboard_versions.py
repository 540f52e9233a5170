"""`/v1/stats/adapter-versions`: traffic, confidence, escalation rate and feedback per adapter
version, against values computed by hand from a few rows (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orchestrator.ledger import Ledger
from tests.integration.test_dashboard_api import ADMIN, USER, make_app
from tests.postgres import postgres_server  # noqa: F401
from tests.unit.test_ledger_row import make_row

# (query id, version, confidence, escalated, tenant)
ROWS = [
    ("a1", "legal@1", 0.40, True, "acme"),
    ("a2", "legal@1", 0.60, False, "acme"),
    ("b1", "legal@2", 0.70, False, "acme"),
    ("b2", "legal@2", 0.90, False, "beta"),
    ("b3", "legal@2", 0.20, True, "acme"),
]
FEEDBACK = [("a1", 0.0), ("b1", 1.0), ("b1", 0.5), ("b2", 1.0)]  # b1 judged twice: mean 0.75


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
        for query_id, version, confidence, escalated, tenant in ROWS:
            ledger.record(
                make_row(query_id=query_id, adapter_version=version, confidence=confidence,
                         escalated=escalated, tenant=tenant)
            )  # fmt: skip
        ledger.record(make_row(query_id="base", adapter=None, route=None))  # no version
        assert ledger.flush(30)
        for query_id, score in FEEDBACK:
            ledger.add_feedback(query_id, score)
    with TestClient(make_app(url)) as test_client:
        yield test_client


def _versions(client: TestClient, **params: str) -> dict[str, dict[str, object]]:
    response = client.get("/v1/stats/adapter-versions", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return {row["version"]: row for row in response.json()["versions"]}


def test_per_version_stats(client: TestClient) -> None:
    versions = _versions(client)
    assert set(versions) == {"legal@1", "legal@2"}
    v1, v2 = versions["legal@1"], versions["legal@2"]
    assert (v1["queries"], v1["mean_confidence"], v1["escalation_rate"]) == (2, 0.5, 0.5)
    assert (v1["feedback_count"], v1["mean_feedback"]) == (1, 0.0)
    assert (v2["queries"], v2["mean_confidence"], v2["escalation_rate"]) == (3, 0.6, 0.3333)
    assert (v2["feedback_count"], v2["mean_feedback"]) == (2, 0.875)  # (0.75 + 1.0) / 2
    assert v2["adapter"] == "legal" and v2["errors"] == 0


def test_per_version_stats_filter_by_tenant(client: TestClient) -> None:
    versions = _versions(client, tenant="beta")
    assert set(versions) == {"legal@2"} and versions["legal@2"]["queries"] == 1


def test_per_version_stats_need_an_admin_key(client: TestClient) -> None:
    assert client.get("/v1/stats/adapter-versions", headers=USER).status_code == 403
    assert client.get("/v1/stats/adapter-versions").status_code == 401
