"""Replacing the cascade policy of a running replica: `PUT /v1/admin/cascade` through the real
FastAPI app and SQLite ledger over in-process models, and the Ingress user_config path
(`apply_user_config`, what `SpillwayIngress.reconfigure` runs). The small model answers with
per-token probability 0.8 on the `legal` route (config threshold 0.9: escalates)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from orchestrator.api.app import create_app
from orchestrator.api.parts import ReplicaParts
from orchestrator.builder import CASCADE_KEY, apply_user_config, assemble_replica
from orchestrator.config import validate_config_dict
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG, FakeModels

ADMIN = {"Authorization": "Bearer key-admin"}
ACME = {"Authorization": "Bearer key-acme"}
API = "/v1/admin/cascade"
LEGAL_AT_070 = {"default": {"threshold": 0.5}, "routes": {"legal": {"threshold": 0.7}}}


@contextmanager
def _replica(tmp: Path) -> Iterator[tuple[TestClient, ReplicaParts]]:
    data = json.loads(json.dumps(CONFIG))
    data["ledger"] = {"url": f"sqlite:///{tmp / 'ledger.db'}"}
    data["server"] = {"state_dir": str(tmp / "state")}
    data["tenants"] = [
        {"name": "ops", "api_keys": ["key-admin"], "admin": True},
        {"name": "acme", "api_keys": ["key-acme"]},
    ]
    config = validate_config_dict(data)
    ledger = Ledger(config.ledger.url)
    ledger.start()
    models = FakeModels(0.8, {"label": "legal", "probability": 0.9, "abstained": False})
    parts = assemble_replica(config, models.backends(), ledger)
    try:
        with TestClient(create_app(parts)) as client:
            yield client, parts
    finally:
        ledger.close()


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[tuple[TestClient, ReplicaParts]]:
    with _replica(tmp_path) as made:
        yield made


def _reply(client: TestClient) -> dict[str, Any]:
    """The `spillway` part of a legal query's response."""
    body = {"model": "auto", "messages": [{"role": "user", "content": "is it valid?"}]}
    reply = client.post("/v1/chat/completions", json=body, headers=ACME)
    assert reply.status_code == 200, reply.text
    info: dict[str, Any] = reply.json()["spillway"]
    assert info["route"] == "legal"
    return info


def _escalated(client: TestClient) -> bool:
    return bool(_reply(client)["escalated"])


def _legal_threshold(client: TestClient) -> float:
    reply = client.get(API, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    return float(reply.json()["policy"]["routes"]["legal"]["threshold"])


def test_get_shows_the_config_policy(replica: Any) -> None:
    client, _ = replica
    reply = client.get(API, headers=ADMIN).json()
    assert reply["source"] == "config" and reply["version"] == 1 and reply["scope"] == "replica"
    assert reply["policy"]["default"] == {"threshold": 0.5}
    assert reply["policy"]["routes"]["legal"] == {"threshold": 0.9}


def test_put_changes_which_answers_escalate(replica: Any) -> None:
    client, parts = replica
    assert _escalated(client) is True  # 0.8 < 0.9
    reply = client.put(API, json=LEGAL_AT_070, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    now = reply.json()
    assert now["source"] == "admin_api" and now["version"] == 2
    assert now["policy"]["routes"]["legal"] == {"threshold": 0.7}
    info = _reply(client)
    assert info["escalated"] is False and info["threshold"] == 0.7  # 0.8 >= 0.7: kept
    assert client.get(API, headers=ADMIN).json() == now
    assert parts.ledger.flush(10)
    row = parts.ledger.get(info["query_id"])
    assert row is not None and not row["escalated"] and row["threshold"] == 0.7
    # The dashboard's threshold lookup follows the policy in force too.
    assert parts.service.live_policy.policy.for_route("legal").threshold == 0.7


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"default": {"threshold": 1.5}}, "default.threshold", "invalid_less_than_equal"),
        (
            {"default": {"threshold": 0.5}, "routes": {"legal": {"threshold": "high"}}},
            "routes.legal.threshold",
            "invalid_float_parsing",
        ),
        ({"default": {"threshold": 0.5, "treshold": 1}}, "default.treshold", "unknown_field"),
        ({"routes": {}}, "default", "invalid_missing"),
        (
            {"default": {"threshold": 0.5, "skip_below": 0.3}},
            "default.skip_below",
            "invalid_skip_without_scorer",
        ),
        (
            {"default": {"threshold": 0.5, "signal": "learned"}},
            "default",
            "invalid_value_error",
        ),
    ],
)
def test_bad_policy_is_refused_and_the_old_one_stays(
    replica: Any, body: dict[str, Any], param: str, code: str
) -> None:
    client, _ = replica
    reply = client.put(API, json=body, headers=ADMIN)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] == code
    assert error["message"].startswith(param)
    assert _legal_threshold(client) == 0.9
    assert client.get(API, headers=ADMIN).json()["version"] == 1
    assert _escalated(client) is True


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b"NaN"])
def test_a_body_that_is_no_json_object_is_a_400(replica: Any, raw: bytes) -> None:
    client, _ = replica
    reply = client.put(API, content=raw, headers=ADMIN)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert _legal_threshold(client) == 0.9


def test_only_admin_keys_read_or_change_the_policy(replica: Any) -> None:
    client, _ = replica
    for method in ("GET", "PUT"):
        denied = client.request(method, API, json=LEGAL_AT_070, headers=ACME)
        assert denied.status_code == 403
        assert denied.json()["error"]["type"] == "permission_error"
        anonymous = client.request(method, API, json=LEGAL_AT_070)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["type"] == "authentication_error"
    assert _legal_threshold(client) == 0.9 and _escalated(client) is True


def test_user_config_replaces_the_policy_on_the_replica(replica: Any) -> None:
    client, parts = replica
    asyncio.run(apply_user_config(parts, None, {CASCADE_KEY: LEGAL_AT_070}))
    now = client.get(API, headers=ADMIN).json()
    assert now["source"] == "user_config" and now["version"] == 2
    assert _escalated(client) is False
    asyncio.run(apply_user_config(parts, None, {"router_artifact_path": "/r"}))  # no cascade key
    assert client.get(API, headers=ADMIN).json() == now


def test_bad_user_config_raises_and_changes_nothing(replica: Any) -> None:
    client, parts = replica
    bad = {CASCADE_KEY: {"default": {"threshold": 0.5}, "routes": {"legal": {"threshold": -1}}}}
    with pytest.raises(ValidationError) as raised:
        asyncio.run(apply_user_config(parts, None, bad))
    assert raised.value.errors()[0]["loc"] == ("routes", "legal", "threshold")
    assert client.get(API, headers=ADMIN).json()["version"] == 1
    assert _escalated(client) is True


@contextmanager
def _served(client_and_parts: tuple[TestClient, ReplicaParts]) -> Iterator[str]:
    """The replica's app over real HTTP on 127.0.0.1 (uvicorn in a thread), for the CLI."""
    import threading

    import uvicorn

    from tests.e2e.conftest import free_port

    port = free_port()
    app = client_and_parts[0].app
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            thread.join(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _calibrate(out: Path, *extra: str) -> Any:
    from click.testing import CliRunner

    from orchestrator.cli import main
    from tests.integration.test_cascade_cli import _synthetic, _write

    outcomes = _write(out.parent / "outcomes.jsonl", _synthetic())
    args = ["cascade", "calibrate", "--outcomes", str(outcomes), "--target", "quality=0.9"]
    env: dict[str, str | None] = {"SPILLWAY_API_KEY": None}  # only the keys given here
    return CliRunner().invoke(
        main, [*args, "--out", str(out), *extra], env=env, catch_exceptions=False
    )


def test_calibrate_apply_puts_the_new_policy_in_force(replica: Any, tmp_path: Path) -> None:
    import yaml

    client, _ = replica
    out = tmp_path / "thresholds.yaml"
    with _served(replica) as url:
        result = _calibrate(out, "--apply", url, "--api-key", "key-admin")
    assert result.exit_code == 0, result.output
    now = client.get(API, headers=ADMIN).json()
    assert now["source"] == "admin_api" and now["version"] == 2
    assert now["policy"] == yaml.safe_load(out.read_text())["policy"]
    assert f"applied to {url}: policy version 2" in result.output


def test_calibrate_apply_refusals_leave_the_policy(replica: Any, tmp_path: Path) -> None:
    client, _ = replica
    out = tmp_path / "thresholds.yaml"
    no_key = _calibrate(out, "--apply", "http://127.0.0.1:9")
    assert no_key.exit_code == 2 and "--api-key" in no_key.output and not out.exists()
    with _served(replica) as url:
        denied = _calibrate(out, "--apply", url, "--api-key", "key-acme")
    assert denied.exit_code == 1 and "403" in denied.output and out.exists()
    assert client.get(API, headers=ADMIN).json()["version"] == 1
