"""Putting a new router artifact in service while the replica runs: `PUT /v1/admin/router`
through the real `SpillwayIngress` (router in the ingress, the default placement) over the
instant backend and a real SQLite ledger, TF-IDF routers trained here; `spillway router
apply` and `spillway router train --from-ledger --apply` against the replica over real HTTP.

Router `a` routes the legal query to `legal`; router `b` was trained with the legal and
medical labels swapped, so after the swap the same query goes to `medical`; router `narrow`
lacks the `legal` label the config maps to an adapter, so it is refused."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bench import instant_backend
from bench.load_service import instant_models
from bench.router_from_ledger import train_serving, write_ledger
from orchestrator.builder import ROUTER_ARTIFACT_KEY, SpillwayIngress
from orchestrator.cli import main
from orchestrator.config import validate_config_dict
from router_training.artifact import ArtifactError, load_router
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router
from tests.e2e.conftest import LOCAL_CONFIG, free_port, local_config_data

pytestmark = pytest.mark.timeout(180)
ADMIN = {"Authorization": "Bearer sk-spillway-local"}
USER = {"Authorization": "Bearer key-user"}
API = "/v1/admin/router"
LEGAL = "Can my landlord keep the security deposit after the lease ended?"
SWAPPED = {"legal": "medical", "medical": "legal"}


def _relabelled(path: Path, keep: set[str] | None = None) -> Path:
    """DOMAINS_SAMPLE with legal and medical swapped (or only the labels in `keep`)."""
    lines = []
    for line in DOMAINS_SAMPLE.read_text().splitlines():
        row = json.loads(line)
        if keep is None:
            row["label"] = SWAPPED.get(row["label"], row["label"])
        elif row["label"] not in keep:
            continue
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("routers")
    narrow = _relabelled(base / "narrow.jsonl", keep={"medical", "code", "general"})
    made = {
        "a": train_router(DOMAINS_SAMPLE, base / "a", kind="tfidf", progress=False),
        "b": train_router(_relabelled(base / "b.jsonl"), base / "b", kind="tfidf", progress=False),
        "narrow": train_router(narrow, base / "narrow", kind="tfidf", progress=False),
    }
    return {name: report.artifact for name, report in made.items()}


@pytest.fixture(scope="module")
def backend_url() -> Iterator[str]:
    with instant_backend.running(free_port()) as url:
        yield url


def _ingress(tmp: Path, backend_url: str, router: Path, **router_fields: Any) -> SpillwayIngress:
    """local.yaml over the instant backend with this router, a second (non-admin) tenant and
    a ledger under `tmp`; Serve's proxy, so the replica starts no HTTP server itself."""
    data = local_config_data(LOCAL_CONFIG) | instant_models(backend_url, LOCAL_CONFIG)
    data["server"] |= {"state_dir": str(tmp / "state"), "http_server": "serve_proxy"}
    data["router"] |= {"artifact": str(router), **router_fields}
    data["ledger"] = {"url": f"sqlite:///{tmp / 'ledger.db'}"}
    data["tenants"].append({"name": "user", "api_keys": ["key-user"], "keep_query_text": True})
    config = validate_config_dict(data).model_dump(mode="json")
    return SpillwayIngress(config, None, None, None)


async def _route(client: httpx.AsyncClient) -> tuple[str, str, str]:
    body = {"model": "auto", "messages": [{"role": "user", "content": LEGAL}], "max_tokens": 4}
    reply = await client.post("/v1/chat/completions", json=body, headers=USER)
    assert reply.status_code == 200, reply.text
    info = reply.json()["spillway"]
    return info["route"], info["adapter"], info["router_version"]


def test_put_swaps_the_router_and_a_bad_artifact_is_refused(
    tmp_path: Path, backend_url: str, routers: dict[str, Path]
) -> None:
    ingress = _ingress(tmp_path, backend_url, routers["a"])
    app = ingress.__serve_build_asgi_app__()

    async def steps() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            first = (await client.get(API, headers=ADMIN)).json()
            assert first["object"] == "router.artifact" and first["placement"] == "ingress"
            assert first["artifact_path"] == str(routers["a"])
            assert await _route(client) == ("legal", "legal", first["artifact_version"])

            swapped = await client.put(
                API, json={"artifact_path": str(routers["b"])}, headers=ADMIN
            )
            assert swapped.status_code == 200, swapped.text
            now = swapped.json()
            assert now["artifact_path"] == str(routers["b"])
            assert now["artifact_version"] != first["artifact_version"]
            assert await _route(client) == ("medical", "medical", now["artifact_version"])
            assert (await client.get(API, headers=ADMIN)).json() == now

            refusals = [
                ({"artifact_path": str(routers["narrow"])}, "router.adapters.legal"),
                ({"artifact_path": str(tmp_path / "missing")}, "not a directory"),
                ({"artifact_path": "bad\u0000path"}, "bad\x00path"),
            ]
            for body, why in refusals:
                reply = await client.put(API, json=body, headers=ADMIN)
                assert reply.status_code == 400, reply.text
                error = reply.json()["error"]
                assert error["param"] == "artifact_path" and error["code"] == "invalid_artifact"
                assert why in error["message"]
            for body in ({"artifact_path": 3}, {"path": str(routers["a"])}, {}):
                reply = await client.put(API, json=body, headers=ADMIN)
                assert reply.status_code == 400 and reply.json()["error"]["param"], reply.text
            for method in ("GET", "PUT"):
                denied = await client.request(
                    method, API, json={"artifact_path": str(routers["a"])}, headers=USER
                )
                assert denied.status_code == 403
            assert (await client.get(API, headers=ADMIN)).json() == now  # still b
            assert await _route(client) == ("medical", "medical", now["artifact_version"])

            # The Ingress user_config path runs the same label check.
            with pytest.raises(ArtifactError, match=r"router\.adapters\.legal"):
                await ingress.reconfigure({ROUTER_ARTIFACT_KEY: str(routers["narrow"])})
            await ingress.reconfigure({ROUTER_ARTIFACT_KEY: str(routers["a"])})
            assert await _route(client) == ("legal", "legal", first["artifact_version"])

    async def scenario() -> None:
        try:
            await steps()
        finally:
            await ingress.__del__()

    asyncio.run(scenario())


@contextmanager
def _served(ingress: SpillwayIngress) -> Iterator[str]:
    """The replica's app over real HTTP on 127.0.0.1 (uvicorn in a thread), for the CLI."""
    import uvicorn

    port = free_port()
    app = ingress.__serve_build_asgi_app__()
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
        asyncio.run(ingress.__del__())


def _cli(*args: str) -> Any:
    env: dict[str, str | None] = {"SPILLWAY_API_KEY": None}  # only the keys given here
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _apply(artifact: Path, url: str, *extra: str, key: str = "sk-spillway-local") -> Any:
    return _cli("router", "apply", str(artifact), "--url", url, "--api-key", key, *extra)


def test_router_apply_command(tmp_path: Path, backend_url: str, routers: dict[str, Path]) -> None:
    ingress = _ingress(tmp_path, backend_url, routers["a"])
    with _served(ingress) as url:
        done = _apply(routers["b"], url, "--json")
        assert done.exit_code == 0, done.output
        answer = json.loads(done.output)
        assert answer["artifact_path"] == str(routers["b"].resolve())
        refused = _apply(routers["narrow"], url)
        assert refused.exit_code == 1 and "400" in refused.output
        assert "router.adapters.legal" in refused.output and "keeps its router" in refused.output
        denied = _apply(routers["b"], url, key="key-user")
        assert denied.exit_code == 1 and "403" in denied.output
        now = httpx.get(url + API, headers=ADMIN).json()
        assert now["artifact_version"] == answer["artifact_version"]


def test_router_apply_to_an_unreachable_service_says_so(routers: dict[str, Path]) -> None:
    refused = _apply(routers["a"], f"http://127.0.0.1:{free_port()}")
    assert refused.exit_code == 1 and "/v1/admin/router" in refused.output
    assert "keeps its router" in refused.output


def _records(path: Path, every: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().split("\n") if line.strip()]
    return [row for i, row in enumerate(rows) if i % every == 0]


def test_from_ledger_apply_puts_the_better_router_in_service(
    tmp_path: Path, backend_url: str, shared_data: Path
) -> None:
    """The CLINC150 drift scenario of bench/router_from_ledger.py: the retrained router beats
    the serving one, is written and then serves; the service's config maps no label to an
    adapter (CLINC labels), so only loading is checked."""
    clinc = shared_data / "clinc150"
    serving = train_serving(_records(clinc / "train.jsonl", 3), tmp_path, "tfidf")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    write_ledger(url, _records(clinc / "val.jsonl", 1), serving)
    ingress = _ingress(tmp_path / "svc", backend_url, serving, adapters={})
    out = tmp_path / "new"
    no_key = _cli(
        "router", "train", "--from-ledger", "--ledger-url", url, "--serving", str(serving),
        "--out", str(out), "--apply", "http://127.0.0.1:9",
    )  # fmt: skip
    assert no_key.exit_code == 2 and "--api-key" in no_key.output and not out.exists()
    with _served(ingress) as service:
        result = _cli(
            "router", "train", "--from-ledger", "--ledger-url", url, "--serving", str(serving),
            "--kind", "tfidf", "--data", str(tmp_path / "serving-train.jsonl"), "--out", str(out),
            "--no-progress", "--apply", service, "--api-key", "sk-spillway-local",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "in service at" in result.output
        now = httpx.get(service + API, headers=ADMIN).json()
    assert now["artifact_path"] == str(out.resolve())
    assert now["artifact_version"] == load_router(out).version


class _Method:
    """`handle.<method>.remote(...)` of a Serve handle, over the object itself (the deployment
    class runs in this process; its answers cross as values, as through Serve)."""

    def __init__(self, bound: Any) -> None:
        self.remote = bound


class _Handle:
    def __init__(self, deployment: Any) -> None:
        self.swap = _Method(deployment.swap)
        self.info = _Method(deployment.info)
        self.route = _Method(deployment.route)


def test_router_deployment_swap_through_its_handle_calls(routers: dict[str, Path]) -> None:
    """`placement: deployment`: the Router deployment's `swap` loads the new artifact or
    answers the error as a value (the handle calls raise it as ArtifactError); it and the
    user_config path refuse an artifact without a label the config routes to an adapter."""
    from orchestrator.backends.router import RouterDeployment
    from orchestrator.backends.seam import router_handle_calls

    async def scenario() -> None:
        entries = [("legal", "router.adapters.legal"), ("code", "router.adapters.code")]
        deployment = RouterDeployment(
            str(routers["a"]), batch_wait_timeout_s=0.0, adapter_labels=entries
        )
        calls = router_handle_calls(_Handle(deployment))
        assert calls.swap is not None
        assert (await calls.route(LEGAL)).label == "legal"
        now = await calls.swap(str(routers["b"]))
        assert now["artifact_path"] == str(routers["b"])
        assert (await calls.route(LEGAL)).label == "medical"
        with pytest.raises(ArtifactError, match="not a directory"):
            await calls.swap(str(routers["b"] / "missing"))
        with pytest.raises(ArtifactError, match=r"router\.adapters\.legal"):
            await calls.swap(str(routers["narrow"]))
        with pytest.raises(ArtifactError, match=r"router\.adapters\.legal"):  # user_config
            deployment.reconfigure({"artifact_path": str(routers["narrow"])})
        assert (await calls.info())["artifact_version"] == now["artifact_version"]
        assert (await calls.route(LEGAL)).label == "medical"

    asyncio.run(scenario())
