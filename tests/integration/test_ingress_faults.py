"""Backend faults through the HTTP surface in process: the real FastAPI app and SQLite ledger,
in-process models that fail or hang. Statuses, headers, bodies, ledger rows, metrics."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.builder import assemble_replica
from orchestrator.config import validate_config_dict
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG, HANG, MID_STREAM, FakeModels

KEY = {"Authorization": "Bearer k"}
MSG = [{"role": "user", "content": "a question"}]
LEGAL = {"label": "legal", "probability": 0.8, "abstained": False}
FAST_CALLS = {"timeout_s": 0.2, "retries": 1, "backoff_s": 0.0}


class Rig:
    def __init__(self, tmp: Path, models: FakeModels):
        data = copy.deepcopy(CONFIG)
        data["ledger"] = {"url": f"sqlite:///{tmp / 'ledger.db'}"}
        for section in ("router", "small", "large"):
            data[section]["calls"] = FAST_CALLS
        config = validate_config_dict(data)
        self.ledger = Ledger(config.ledger.url)
        self.ledger.start()
        self.parts = assemble_replica(config, models.backends(), self.ledger)
        self.client = TestClient(create_app(self.parts))

    def chat(self, model: str = "auto", stream: bool = False) -> Any:
        body = {"model": model, "messages": MSG, "stream": stream}
        return self.client.post("/v1/chat/completions", content=json.dumps(body), headers=KEY)

    def row(self, response: Any) -> dict[str, Any]:
        self.ledger.flush()
        row = self.ledger.get(response.headers["x-spillway-query-id"])
        assert row is not None
        return row


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Any]:
    rigs: list[Rig] = []

    def make(small_prob: float, failures: dict[str, list[Any]]) -> Rig:
        rig = Rig(tmp_path / str(len(rigs)), FakeModels(small_prob, LEGAL, failures))
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.client.close()
        rig.ledger.close()


def _events(response: Any) -> list[Any]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_small_unavailable_is_answered_by_large(make_rig: Any) -> None:
    rig = make_rig(0.95, {"small": [ConnectionError("replica died")]})
    response = rig.chat()
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "large" and body["spillway"]["reason"] == "small_unavailable"
    assert response.headers["x-spillway-escalated"] == "true"
    assert response.headers["x-spillway-degraded"] == "false"
    assert response.headers["x-spillway-faults"] == "small"
    row = rig.row(response)
    assert row["status"] == "ok" and row["escalation_reason"] == "small_unavailable"
    assert row["faults"] == "small" and row["degraded"] is False
    assert row["small_prompt_tokens"] == 0 and row["large_prompt_tokens"] == 100
    assert row["cost_usd"] == Decimal("0.00106") == row["baseline_cost_usd"]


def test_large_unavailable_returns_degraded_small_answer(make_rig: Any) -> None:
    rig = make_rig(0.8, {"large": [HANG]})
    response = rig.chat()
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "small says" and body["model"] == "legal"
    assert body["spillway"]["degraded"] is True and body["spillway"]["faults"] == ["large"]
    assert response.headers["x-spillway-degraded"] == "true"
    assert response.headers["x-spillway-reason"] == "large_unavailable"
    row = rig.row(response)
    assert row["degraded"] is True and row["answered_by"] == "legal"
    assert row["escalated"] is True and row["escalation_reason"] == "large_unavailable"
    assert row["cost_usd"] == Decimal("0.000106") and row["large_prompt_tokens"] == 0
    metrics = rig.client.get("/metrics").text
    assert 'spillway_degraded_total{route="legal",tenant="t"} 1.0' in metrics
    assert 'spillway_backend_faults_total{stage="large",status="ok"}' in metrics


@pytest.mark.parametrize("stream", [False, True])
def test_both_unavailable_is_503_with_retry_after(make_rig: Any, stream: bool) -> None:
    rig = make_rig(0.95, {"small": [HANG], "large": [ConnectionError("down")]})
    response = rig.chat(stream=stream)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "models_unavailable" and error["type"] == "server_error"
    row = rig.row(response)
    assert row["status"] == "error" and row["http_status"] == 503
    assert row["error_type"] == "models_unavailable" and row["faults"] == "small,large"
    assert row["cost_usd"] == Decimal(0)


def test_named_large_unavailable_is_503(make_rig: Any) -> None:
    rig = make_rig(0.95, {"large": [RuntimeError("engine dead")]})
    response = rig.chat(model="large")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "large_unavailable"
    row = rig.row(response)
    assert row["faults"] == "large" and row["escalated"] is False


def test_router_unavailable_uses_base_model(make_rig: Any) -> None:
    rig = make_rig(0.95, {"router": [HANG]})
    response = rig.chat()
    assert response.status_code == 200 and response.json()["model"] == "small"
    assert (
        response.headers["x-spillway-route"] == ""
        and response.headers["x-spillway-faults"] == "router"
    )
    row = rig.row(response)
    assert row["route"] is None and row["adapter"] is None and row["faults"] == "router"
    assert row["latency_router_ms"] >= 200


def test_stream_small_unavailable_streams_large(make_rig: Any) -> None:
    rig = make_rig(0.95, {"small": [HANG]})
    response = rig.chat(stream=True)
    assert response.status_code == 200 and response.headers["x-spillway-faults"] == "small"
    chunks = _events(response)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "abc"
    assert (
        chunks[-1]["model"] == "large" and chunks[-1]["spillway"]["reason"] == "small_unavailable"
    )
    assert rig.row(response)["escalation_reason"] == "small_unavailable"


def test_stream_large_unavailable_replays_small_degraded(make_rig: Any) -> None:
    rig = make_rig(0.8, {"large": [ConnectionError("down")]})
    response = rig.chat(stream=True)
    assert response.status_code == 200 and response.headers["x-spillway-degraded"] == "true"
    chunks = _events(response)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "abc"
    assert chunks[-1]["spillway"]["degraded"] is True and chunks[-1]["model"] == "legal"
    row = rig.row(response)
    assert row["degraded"] is True and row["stream"] is True and row["status"] == "ok"


def test_stream_large_failure_mid_stream_is_in_band_and_billed(make_rig: Any) -> None:
    rig = make_rig(0.8, {"large": [MID_STREAM]})
    response = rig.chat(stream=True)
    assert response.status_code == 200
    chunks = _events(response)
    assert chunks[-1]["error"]["code"] == "service_unavailable"
    row = rig.row(response)
    assert row["status"] == "error" and row["http_status"] == 503 and row["degraded"] is False
    assert row["small_completion_tokens"] == 3 and row["large_completion_tokens"] == 1
    assert row["cost_usd"] > Decimal("0.000106")


def test_request_error_is_not_hidden_by_a_fallback(make_rig: Any) -> None:
    from orchestrator.backends.llm import PromptTooLongError

    rig = make_rig(0.95, {"small": [PromptTooLongError("too long", param="messages")]})
    response = rig.chat()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert rig.row(response)["faults"] is None
