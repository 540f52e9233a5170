"""The adapter admin API through the real FastAPI app, SQLite ledger and adapter registry (a
temporary state dir), with in-process models: admin keys only, versions reach the small model
as `name@N` and the ledger, promote/rollback/remove change what a name serves, a tenant's
private versions reach that tenant only, the registry file is what every replica reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.config import validate_config_dict
from orchestrator.config.adapter_registry import REGISTRY_FILE
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG, FakeModels, in_process_app

ADMIN = {"Authorization": "Bearer key-admin"}
ACME = {"Authorization": "Bearer key-acme"}
MSG = [{"role": "user", "content": "is this contract valid?"}]
API = "/v1/admin/adapters"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Ledger, Any]]:
    tmp = tmp_path_factory.mktemp("admin")
    data = json.loads(json.dumps(CONFIG))
    data["ledger"] = {"url": f"sqlite:///{tmp / 'ledger.db'}"}
    data["server"] = {"state_dir": str(tmp / "state")}
    data["tenants"] = [
        {"name": "ops", "api_keys": ["key-admin"], "admin": True},
        {"name": "acme", "api_keys": ["key-acme"]},
    ]
    for version in ("v2", "v3"):
        folder = tmp / version
        folder.mkdir()
        (folder / "adapter_config.json").write_text('{"r": 8}', encoding="utf-8")
        (folder / "adapter_model.safetensors").write_bytes(version.encode())
    models = FakeModels(0.95, {"label": "legal", "probability": 0.8, "abstained": False})
    with in_process_app(validate_config_dict(data), models) as (client, ledger):
        yield client, ledger, (models, tmp)


def _chat(client: TestClient, model: str, headers: dict[str, str] = ADMIN) -> Any:
    body = {"model": model, "messages": MSG}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def _version(rig: tuple[TestClient, Ledger, Any], model: str) -> str:
    """The version the small model was asked for, checked in the response and the ledger."""
    client, ledger, (models, _) = rig
    reply = _chat(client, model)
    assert reply.status_code == 200, reply.text
    info = reply.json()["spillway"]
    asked = models.calls[-1][1].adapter
    assert info["adapter_version"] == asked and info["adapter"] == asked.partition("@")[0]
    assert ledger.flush(10)
    assert ledger.get(info["query_id"])["adapter_version"] == asked  # type: ignore[index]
    return str(asked)


def test_only_admin_keys_manage_adapters(rig: Any) -> None:
    client = rig[0]
    assert client.get(API, headers=ACME).status_code == 403
    assert client.get(API).status_code == 401
    denied = client.post(f"{API}/legal/rollback", headers=ACME)
    assert denied.status_code == 403 and denied.json()["error"]["type"] == "permission_error"


def test_add_promote_rollback_remove(rig: Any) -> None:
    client, _, (_, tmp) = rig
    assert _version(rig, "legal") == "legal@1"
    added = client.post(API, json={"name": "legal", "path": str(tmp / "v2")}, headers=ADMIN)
    assert added.status_code == 200 and added.json()["added"] == "legal@2"
    assert _version(rig, "legal") == "legal@1" and _version(rig, "legal@2") == "legal@2"
    assert client.post(f"{API}/legal/promote", json={"version": 2}, headers=ADMIN).is_success
    assert _version(rig, "legal") == "legal@2" and _version(rig, "auto") == "legal@2"
    body = {"name": "legal", "path": str(tmp / "v3"), "promote": True}
    assert client.post(API, json=body, headers=ADMIN).json()["added"] == "legal@3"
    assert _version(rig, "legal") == "legal@3"
    rolled = client.post(f"{API}/legal/rollback", headers=ADMIN)
    assert rolled.json()["result"] == "legal@2" and _version(rig, "legal") == "legal@2"
    assert client.delete(f"{API}/legal@3", headers=ADMIN).json()["result"] == ["legal@3"]
    gone = _chat(client, "legal@3")
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "model"
    registry = json.loads((tmp / "state" / REGISTRY_FILE).read_text(encoding="utf-8"))
    assert registry["adapters"]["legal"]["serving"] == 2


def test_refusals_are_openai_errors(rig: Any) -> None:
    client, _, (_, tmp) = rig
    cases = [
        (client.post(API, json={"name": "x", "path": str(tmp / "none")}, headers=ADMIN), 400),
        (client.post(f"{API}/legal/promote", json={"version": 9}, headers=ADMIN), 404),
        (client.post(f"{API}/nope/rollback", headers=ADMIN), 404),
        (client.delete(f"{API}/legal@2", headers=ADMIN), 400),  # the version it serves
        (client.post(API, json={"name": "y", "path": "/", "tenant": "zz"}, headers=ADMIN), 400),
        (client.post(API, json={"name": "y", "path": "/", "extra": 1}, headers=ADMIN), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_private_versions_reach_their_tenant_only(rig: Any) -> None:
    client, _, (_, tmp) = rig
    body = {"name": "acme-legal", "path": str(tmp / "v2"), "tenant": "acme"}
    assert client.post(API, json=body, headers=ADMIN).json()["added"] == "acme-legal@1"
    assert _chat(client, "acme-legal@1", ACME).status_code == 200
    listed = [m["id"] for m in client.get("/v1/models", headers=ACME).json()["data"]]
    assert "acme-legal" in listed
    for model in ("acme-legal", "acme-legal@1"):
        assert _chat(client, model, ADMIN).status_code == 404
    admin_models = [m["id"] for m in client.get("/v1/models", headers=ADMIN).json()["data"]]
    assert "acme-legal" not in admin_models
    rows = {row["name"]: row for row in client.get(API, headers=ADMIN).json()["data"]}
    assert rows["acme-legal"]["owner"] == "acme" and rows["legal"]["owner"] is None


def test_canary_sends_a_share_to_the_new_version(rig: Any) -> None:
    client = rig[0]
    set_canary = client.post(
        f"{API}/legal/canary", json={"version": 1, "share": 0.5}, headers=ADMIN
    )
    assert set_canary.is_success, set_canary.text
    seen = {_version(rig, "legal") for _ in range(24)}
    assert seen == {"legal@1", "legal@2"}
    stop = client.post(f"{API}/legal/canary", json={"version": 1, "share": 0}, headers=ADMIN)
    assert stop.is_success and {_version(rig, "legal") for _ in range(6)} == {"legal@2"}


def test_registry_file_is_not_in_the_shared_state(rig: Any) -> None:
    tmp: Path = rig[2][1]
    assert (tmp / "state" / "adapters" / "legal" / "2" / "adapter_model.safetensors").is_file()
