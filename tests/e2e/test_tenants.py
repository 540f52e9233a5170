"""Tenants on the real stack (Ray Serve, router artifact, vLLM on the CPU, SQLite ledger).

Tenant `acme` has its own adapter for the router label `legal` (the local `medical` adapter,
made private to acme) and its key comes from an environment variable, read inside the Ray
ingress replica; `beta` has no own adapter and a rate limit of 3 requests a minute."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import API_KEY, LOCAL_CONFIG, RunningService, start_service, stop_service

pytestmark = pytest.mark.slow

ACME_ENV, ACME_KEY, BETA_KEY = "SPILLWAY_E2E_KEY_ACME", "sk-e2e-acme-5f1c", "sk-e2e-beta-93ab"
LEGAL_QUESTION = (
    "My landlord kept my security deposit after the lease ended. "
    "Can I sue for breach of contract in small claims court?"
)
TENANTS = [
    {"name": "local", "api_keys": [API_KEY], "admin": True},
    {"name": "acme", "api_keys_env": [ACME_ENV], "adapters": {"legal": "medical"}},
    {"name": "beta", "api_keys": [BETA_KEY], "requests_per_minute": 3},
]
SHARED = {"legal": "legal", "code": "code", "medical": None, "general": None}


@pytest.fixture(scope="module")
def tenants_service(
    local_models_built: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    router = yaml.safe_load(LOCAL_CONFIG.read_text())["router"]
    router["artifact"] = str((LOCAL_CONFIG.parent / router["artifact"]).resolve())
    router["adapters"] = SHARED  # `medical` is acme's alone now
    overrides = {"tenants": TENANTS, "router": router}
    os.environ[ACME_ENV] = ACME_KEY  # inherited by `spillway serve` and its Ray workers
    try:
        running, proc = start_service(tmp_path_factory.mktemp("tenants"), overrides)
    finally:
        os.environ.pop(ACME_ENV, None)
    try:
        wait_for_models(running)
    except BaseException:
        stop_service(proc)
        raise
    yield running
    assert stop_service(proc) == 0
    assert ACME_KEY not in running.log_path.read_text()  # keys are never logged


def wait_for_models(service: RunningService, limit_s: float = 900) -> None:
    """/v1/models answers once the ingress is up; the engines may still be loading."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{service.base_url}/readyz", timeout=15).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(3)
    raise TimeoutError(f"the engines were not ready in {limit_s:.0f} s")


def call(service: RunningService, key: str, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, service.base_url + path, headers=headers, timeout=600, **kwargs)


def ask(service: RunningService, key: str, model: str = "auto") -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": LEGAL_QUESTION}],
            "max_tokens": 4, "temperature": 0}  # fmt: skip
    return call(service, key, "POST", "/v1/chat/completions", json=body)


def test_label_resolves_per_tenant_and_private_adapter_is_hidden(
    tenants_service: RunningService,
) -> None:
    mine = ask(tenants_service, ACME_KEY)
    assert mine.status_code == 200, mine.text
    info = mine.json()["spillway"]
    assert (info["route"], info["adapter"]) == ("legal", "medical")  # acme's own legal adapter
    shared = ask(tenants_service, BETA_KEY)
    assert shared.status_code == 200 and shared.json()["spillway"]["adapter"] == "legal"
    for key in (BETA_KEY, API_KEY):  # not even the admin may use acme's adapter
        taken = ask(tenants_service, key, "medical")
        unknown = ask(tenants_service, key, "no-such-model")
        assert taken.status_code == unknown.status_code == 404
        assert taken.json()["error"]["code"] == unknown.json()["error"]["code"] == "model_not_found"
    listed = {m["id"] for m in call(tenants_service, BETA_KEY, "GET", "/v1/models").json()["data"]}
    assert "medical" not in listed and "legal" in listed
    acme = {m["id"] for m in call(tenants_service, ACME_KEY, "GET", "/v1/models").json()["data"]}
    assert "medical" in acme
    query_id = info["query_id"]
    assert call(tenants_service, BETA_KEY, "GET", f"/v1/queries/{query_id}").status_code == 404
    assert call(tenants_service, ACME_KEY, "GET", f"/v1/queries/{query_id}").status_code == 200


def test_rate_limit_and_stats_access(tenants_service: RunningService) -> None:
    statuses = [ask(tenants_service, BETA_KEY, "no-such-model").status_code for _ in range(4)]
    assert 429 in statuses  # 3 a minute; the previous test used some of beta's tokens too
    refused = ask(tenants_service, BETA_KEY)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert call(tenants_service, BETA_KEY, "GET", "/v1/stats/tenants").status_code == 403
    deadline = time.monotonic() + 30  # ledger rows are written in the background
    while True:
        panel = call(tenants_service, API_KEY, "GET", "/v1/stats/tenants").json()
        lines = {t["tenant"]: t for t in panel["tenants"]}
        if lines["beta"]["rejected"]["rate_limit"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert set(lines) == {"local", "acme", "beta"}
    assert lines["beta"]["requests_per_minute"] == 3
    assert lines["beta"]["rejected"]["rate_limit"] >= 2
    assert lines["acme"]["queries"] >= 1 and lines["acme"]["spent_usd"] > 0
    own = call(tenants_service, BETA_KEY, "GET", "/v1/usage").json()
    assert own["tenant"] == "beta" and own["rejected"]["rate_limit"] >= 2
