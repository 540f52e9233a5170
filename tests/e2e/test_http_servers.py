"""Both ways HTTP reaches Spillway, through `spillway serve` and the official client.

The rest of tests/e2e runs local.yaml, where the ingress replica serves HTTP itself
(`server.http_server: ingress`). Here: Ray Serve's HTTP proxy (`serve_proxy`, the cluster
setting) with the real engines, and two ingress replicas sharing one port (with the instant
backend of bench/, since only the HTTP path is under test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import instant_backend
from bench.load_service import instant_models
from tests.e2e.conftest import (
    TEST_CASCADE,
    RunningService,
    free_port,
    local_config_data,
    start_service,
    stop_service,
)

pytestmark = pytest.mark.slow


def server_section(**changes: object) -> dict[str, object]:
    return dict(local_config_data()["server"]) | changes


@pytest.fixture(scope="module")
def proxied(
    local_models_built: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    overrides = {"cascade": TEST_CASCADE, "server": server_section(http_server="serve_proxy")}
    running, proc = start_service(tmp_path_factory.mktemp("proxied"), overrides)
    yield running
    assert stop_service(proc) == 0, running.log_path.read_text()[-3000:]


def test_serve_proxy_answers_completions_and_streams(proxied: RunningService) -> None:
    client = proxied.client()
    question = [{"role": "user", "content": "What is the capital of France?"}]
    completion = client.chat.completions.create(model="auto", messages=question, max_tokens=8)
    query_id = completion.model_extra["spillway"]["query_id"]
    assert completion.choices[0].message.content
    chunks = list(
        client.chat.completions.create(model="auto", messages=question, max_tokens=8, stream=True)
    )
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    row = httpx.get(
        f"{proxied.base_url}/v1/queries/{query_id}",
        headers={"Authorization": f"Bearer {proxied.api_key}"},
        timeout=10,
    )
    assert row.status_code == 200 and row.json()["query_id"] == query_id


def test_serve_proxy_unknown_path_is_an_openai_error(proxied: RunningService) -> None:
    response = httpx.get(f"{proxied.base_url}/v1/nothing-here", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_two_ingress_replicas_share_the_port(tmp_path: Path) -> None:
    with instant_backend.running(free_port()) as backend_url:
        overrides = instant_models(backend_url) | {
            "server": server_section(http_server="ingress", ingress_replicas=2)
        }
        running, proc = start_service(tmp_path, overrides)
        try:
            headers = {"Authorization": f"Bearer {running.api_key}"}
            body = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}
            statuses = []
            for _ in range(40):  # a new connection each: the kernel spreads them over both
                with httpx.Client(timeout=30) as client:
                    response = client.post(
                        f"{running.base_url}/v1/chat/completions",
                        content=json.dumps(body),
                        headers=headers,
                    )
                statuses.append(response.status_code)
            counts = {answered_by_replica(running.base_url) for _ in range(30)}
        finally:
            code = stop_service(proc)
    assert statuses == [200] * 40
    assert code == 0, running.log_path.read_text()[-3000:]
    # each replica counts what it answered: both did some, and together all 40
    assert max(counts) < 40 and (sum(counts) == 40 or counts == {20}), counts


def answered_by_replica(base_url: str) -> int:
    """Chat requests answered 200 by the replica this new connection reaches (its /metrics)."""
    with httpx.Client(timeout=10) as client:
        text = client.get(f"{base_url}/metrics").text
    return round(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("spillway_requests_total{") and 'code="200"' in line
        )
    )
