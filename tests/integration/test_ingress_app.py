"""The HTTP surface in process: the real FastAPI app and SQLite ledger, in-process models.

Fast checks of status codes, error bodies, headers, SSE framing and ledger rows; the same
paths run against Ray Serve and vLLM in tests/e2e."""

from __future__ import annotations

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

KEY = {"Authorization": "Bearer k"}
MSG = [{"role": "user", "content": "a question"}]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Ledger, FakeModels]]:
    data = json.loads(json.dumps(CONFIG))
    data["ledger"] = {"url": f"sqlite:///{tmp_path / 'ledger.db'}"}
    data["limits"]["max_body_bytes"] = 4096
    data["tenants"].append({"name": "other", "api_keys": ["k2"]})
    config = validate_config_dict(data)
    models = FakeModels(0.95, {"label": "legal", "probability": 0.8, "abstained": False})
    with in_process_app(config, models) as (client, ledger):
        yield client, ledger, models


def _chat(client: TestClient, body: Any, headers: dict[str, str] = KEY) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/v1/chat/completions", content=raw, headers=headers)


def test_completion_body_headers_and_ledger_row(app: Any) -> None:
    client, _, _ = app
    response = _chat(client, {"model": "auto", "messages": MSG})
    assert response.status_code == 200
    body = response.json()
    info = body["spillway"]
    assert body["object"] == "chat.completion" and body["model"] == "legal"
    assert body["usage"] == {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103}
    assert info["route"] == "legal" and info["escalated"] is False
    assert response.headers["x-spillway-adapter"] == "legal"
    assert response.headers["x-spillway-cost-usd"] == info["cost_usd"]
    row = client.get(f"/v1/queries/{info['query_id']}", headers=KEY).json()
    assert row["small_prompt_tokens"] == 100 and row["large_prompt_tokens"] == 0
    assert Decimal(row["cost_usd"]) == Decimal("0.000106")
    assert Decimal(row["baseline_cost_usd"]) == Decimal("0.00106")


def test_other_tenant_cannot_read_the_row(app: Any) -> None:
    client, _, _ = app
    query_id = _chat(client, {"model": "auto", "messages": MSG}).json()["spillway"]["query_id"]
    other = client.get(f"/v1/queries/{query_id}", headers={"Authorization": "Bearer k2"})
    assert other.status_code == 404


def test_stream_frames_and_final_chunk(app: Any) -> None:
    client, _, _ = app
    response = _chat(client, {"model": "auto", "messages": MSG, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "abc"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["spillway"]["adapter"] == "legal"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (b"{bad", 400, None, "invalid_json"),
        (b"", 400, None, "empty_body"),
        (b"\xff", 400, None, "invalid_utf8"),
        ({"model": "auto"}, 400, "messages", None),
        ({"model": "nope", "messages": MSG}, 404, "model", "model_not_found"),
        ({"model": "auto", "messages": MSG, "max_tokens": 101}, 400, "max_tokens", None),
        ({"model": "auto", "messages": MSG, "top_p": 2}, 400, "top_p", None),
        ({"model": "auto", "messages": [{"role": "user", "content": "x" * 5000}]}, 413, None, None),
    ],
)
def test_bad_input(app: Any, body: Any, status: int, param: str | None, code: str | None) -> None:
    client, ledger, _ = app
    response = _chat(client, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    if code:
        assert error["code"] == code
    ledger.flush()
    row = ledger.get(response.headers["x-spillway-query-id"])
    assert row is not None and row["status"] == "error" and row["http_status"] == status


def test_auth_and_unknown_paths(app: Any) -> None:
    client, _, _ = app
    assert _chat(client, {"model": "auto", "messages": MSG}, headers={}).status_code == 401
    wrong = _chat(client, {"model": "auto", "messages": MSG}, {"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    missing = client.get("/v1/nothing-here", headers=KEY)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"


def test_metrics_count_queries(app: Any) -> None:
    client, _, _ = app
    _chat(client, {"model": "auto", "messages": MSG})
    text = client.get("/metrics").text
    assert "spillway_requests_total" in text


def test_models_list(app: Any) -> None:
    client, _, _ = app
    ids = [m["id"] for m in client.get("/v1/models", headers=KEY).json()["data"]]
    assert ids == ["auto", "small", "legal", "large"]


def test_feedback_is_stored_for_own_queries_only(app: Any) -> None:
    client, ledger, _ = app
    query_id = _chat(client, {"model": "auto", "messages": MSG}).json()["spillway"]["query_id"]
    ledger.flush()
    stored = client.post("/v1/feedback", json={"query_id": query_id, "correct": False}, headers=KEY)
    assert stored.status_code == 200 and stored.json()["score"] == 0.0
    assert [f["score"] for f in ledger.feedback(query_id)] == [0.0]
    other = client.post(
        "/v1/feedback",
        json={"query_id": query_id, "score": 1},
        headers={"Authorization": "Bearer k2"},
    )
    assert other.status_code == 404
    bad = client.post("/v1/feedback", json={"query_id": query_id, "score": 1.5}, headers=KEY)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "score"
    empty = client.post("/v1/feedback", json={"query_id": query_id}, headers=KEY)
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "score"
    routed = {"query_id": query_id, "correct": False, "route": "general"}
    corrected = client.post("/v1/feedback", json=routed, headers=KEY)
    assert corrected.status_code == 200 and corrected.json()["route"] == "general"
    assert [f["route"] for f in ledger.feedback(query_id)] == [None, "general"]
    blank = client.post("/v1/feedback", json={**routed, "route": ""}, headers=KEY)
    assert blank.status_code == 400 and blank.json()["error"]["param"] == "route"


def test_readyz_reports_backend_health(app: Any) -> None:
    client, _, _ = app
    assert client.get("/readyz").status_code == 200  # no readiness check configured
