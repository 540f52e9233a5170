"""An ingress replica that holds its router and its remote models' clients itself (the
default placements): the real `SpillwayIngress` over the instant backend (a real HTTP server
on loopback) and a real SQLite ledger, driven over ASGI. Routes, answers, ledger rows and
/readyz are those of the deployment placements; a router swapped through the Ingress's
user_config (`reconfigure`) during traffic fails no query and every row names the artifact
that routed it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import instant_backend
from bench.load_service import instant_models
from orchestrator.builder import ROUTER_ARTIFACT_KEY, SpillwayIngress, build_app
from orchestrator.config import validate_config_dict
from router_training.artifact import ArtifactError
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router
from tests.e2e.conftest import LOCAL_CONFIG, free_port, local_config_data

pytestmark = pytest.mark.timeout(120)
KEY = {"Authorization": "Bearer sk-spillway-local"}
LEGAL = "Can my landlord keep the security deposit after the lease ended?"


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("routers")
    first = train_router(DOMAINS_SAMPLE, base / "a", kind="tfidf", progress=False)
    second = train_router(
        DOMAINS_SAMPLE, base / "b", kind="tfidf", progress=False, abstain_target="fixed=0.3"
    )
    return first.artifact, second.artifact


@pytest.fixture(scope="module")
def backend_url() -> Iterator[str]:
    with instant_backend.running(free_port()) as url:
        yield url


def config_data(tmp: Path, backend_url: str, router: Path) -> dict[str, Any]:
    """local.yaml with the instant backend, this router, a ledger and state under `tmp`, and
    Serve's proxy (so the replica starts no HTTP server of its own: ASGI is driven here)."""
    data = local_config_data(LOCAL_CONFIG) | instant_models(backend_url, LOCAL_CONFIG)
    data["server"] |= {"state_dir": str(tmp / "state"), "http_server": "serve_proxy"}
    data["router"]["artifact"] = str(router)
    data["ledger"] = {"url": f"sqlite:///{tmp / 'ledger.db'}"}
    return validate_config_dict(data).model_dump(mode="json")


async def _chat(client: httpx.AsyncClient, model: str, text: str = LEGAL) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 4}
    return await client.post("/v1/chat/completions", json=body, headers=KEY)


async def _row(client: httpx.AsyncClient, query_id: str) -> dict[str, Any]:
    for _ in range(100):  # the writer flushes within 0.2 s
        response = await client.get(f"/v1/queries/{query_id}", headers=KEY)
        if response.status_code == 200:
            found: dict[str, Any] = response.json()
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ledger row for {query_id}")


def test_routes_rows_and_live_swap_with_the_router_in_the_ingress(
    tmp_path: Path, backend_url: str, routers: tuple[Path, Path]
) -> None:
    first, second = routers
    ingress = SpillwayIngress(config_data(tmp_path, backend_url, first), None, None, None)
    app = ingress.__serve_build_asgi_app__()

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            await ingress.reconfigure({ROUTER_ARTIFACT_KEY: str(first)})  # Serve's first call
            ready = (await client.get("/readyz")).json()
            first_version = ready["router_version"]
            auto = await _chat(client, "auto")
            assert auto.status_code == 200, auto.text
            info = auto.json()["spillway"]
            assert (info["route"], info["adapter"], info["router_version"]) == (
                "legal",
                "legal",
                first_version,
            )
            assert auto.headers["x-spillway-adapter"] == "legal"
            row = await _row(client, info["query_id"])
            assert (row["route"], row["adapter"], row["answered_by"]) == ("legal", "legal", "legal")
            assert row["latency_router_ms"] > 0 and row["router_version"] == first_version
            named = await _chat(client, "spillway-large")
            named_row = await _row(client, named.json()["spillway"]["query_id"])
            assert named_row["route"] is None and named_row["answered_by"] == "spillway-large"
            assert named_row["latency_router_ms"] is None

            traffic = [asyncio.create_task(_chat(client, "auto")) for _ in range(30)]
            await ingress.reconfigure({ROUTER_ARTIFACT_KEY: str(second)})
            traffic += [asyncio.create_task(_chat(client, "auto")) for _ in range(30)]
            answers = await asyncio.gather(*traffic)
            assert [a.status_code for a in answers] == [200] * 60
            second_version = (await client.get("/readyz")).json()["router_version"]
            assert second_version != first_version
            versions = [a.json()["spillway"]["router_version"] for a in answers]
            assert set(versions) <= {first_version, second_version}
            assert versions[-1] == second_version
            rows = [await _row(client, a.json()["spillway"]["query_id"]) for a in answers]
            assert [r["router_version"] for r in rows] == versions  # every row, its artifact

            with pytest.raises(ArtifactError):  # Serve reports the failed update
                await ingress.reconfigure({ROUTER_ARTIFACT_KEY: str(tmp_path / "missing")})
            after = await _chat(client, "auto")
            assert after.json()["spillway"]["router_version"] == second_version
        await ingress.__del__()  # drains, writes the rows, closes the router and the clients

    asyncio.run(scenario())


def test_build_app_binds_deployments_only_where_asked(
    tmp_path: Path, backend_url: str, routers: tuple[Path, Path]
) -> None:
    """Default: no Router and no model deployments (only the Ingress, with the artifact in
    its user_config); `placement: deployment` brings each back."""
    data = config_data(tmp_path, backend_url, routers[0])
    default = build_app(validate_config_dict(data))
    assert default._bound_deployment.name == "Ingress"
    assert default._bound_deployment.user_config == {ROUTER_ARTIFACT_KEY: str(routers[0])}
    assert default._bound_deployment.init_args[1:] == (None, None, None)
    data["router"]["placement"] = "deployment"
    data["large"]["placement"] = "deployment"
    placed = build_app(validate_config_dict(data))
    router, small, large = placed._bound_deployment.init_args[1:]
    assert router._bound_deployment.name == "Router" and small is None
    assert large._bound_deployment.name == "LargeLLM"
    assert placed._bound_deployment.user_config is None
