"""Where a request's time goes in one ingress replica, prompt by prompt, without Ray or uvicorn.

The real `SpillwayIngress` (default placements: the router and the remote models' clients in
process) over the instant backend (a real HTTP server on loopback) and a fresh SQLite ledger,
driven over ASGI one request at a time: for each of load.py's prompts, the median time of
`model: spillway-large`, of `model: auto` (with its route and whether it escalated), and of the
same body sent to the backend directly. The router artifact is local.yaml's unless given.

    .venv/bin/python bench/ingress_per_prompt.py --requests 30
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench import instant_backend
from bench.load import API_KEY, PROMPTS
from bench.load_service import instant_models

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def replica_config(tmp: Path, backend_url: str, router: str | None) -> dict[str, Any]:
    """local.yaml with the instant backend, state and ledger under `tmp`, Serve's proxy (so
    the replica opens no port of its own)."""
    from orchestrator.config import validate_config_dict
    from tests.e2e.conftest import LOCAL_CONFIG, local_config_data

    data = local_config_data(LOCAL_CONFIG) | instant_models(backend_url, LOCAL_CONFIG)
    data["server"] |= {"state_dir": str(tmp / "state"), "http_server": "serve_proxy"}
    data["ledger"] = {"url": f"sqlite:///{tmp / 'ledger.db'}"}
    if router:
        data["router"]["artifact"] = router
    return validate_config_dict(data).model_dump(mode="json")


async def _timed(send: Any, body: dict[str, Any], repeats: int) -> tuple[float, httpx.Response]:
    times, response = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        response = await send(body)
        times.append((time.perf_counter() - started) * 1000)
    assert response is not None and response.status_code == 200, response
    return statistics.median(times), response


async def measure(app: Any, backend_url: str, repeats: int) -> list[dict[str, Any]]:
    rows = []
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://replica") as spillway,
        httpx.AsyncClient(base_url=backend_url) as backend,
    ):

        async def via_spillway(body: dict[str, Any]) -> httpx.Response:
            return await spillway.post("/v1/chat/completions", json=body, headers=HEADERS)

        async def direct(body: dict[str, Any]) -> httpx.Response:
            return await backend.post("/chat/completions", json=body)

        for prompt in PROMPTS:
            body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8}
            named = {**body, "model": instant_backend.LARGE_MODEL, "temperature": 0}
            auto_ms, auto = await _timed(via_spillway, {**named, "model": "auto"}, repeats)
            named_ms, _ = await _timed(via_spillway, named, repeats)
            direct_ms, _ = await _timed(direct, named, repeats)
            info = auto.json()["spillway"]
            rows.append(
                {
                    "prompt": prompt,
                    "direct_ms": round(direct_ms, 2),
                    "named_ms": round(named_ms, 2),
                    "auto_ms": round(auto_ms, 2),
                    "route": info["route"],
                    "escalated": info["escalated"],
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="per prompt and path")
    parser.add_argument("--router", help="router artifact (default: local.yaml's)")
    args = parser.parse_args()
    from orchestrator.builder import SpillwayIngress
    from tests.e2e.conftest import free_port

    with (
        instant_backend.running(free_port()) as backend_url,
        tempfile.TemporaryDirectory(prefix="spillway-per-prompt-") as tmp,
    ):
        ingress = SpillwayIngress(replica_config(Path(tmp), backend_url, args.router), *[None] * 3)
        app = ingress.__serve_build_asgi_app__()

        async def run() -> list[dict[str, Any]]:
            try:
                return await measure(app, backend_url, args.requests)
            finally:
                await ingress.__del__()

        rows = asyncio.run(run())
    print("| prompt | direct ms | named ms | auto ms | route | escalated |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['prompt'][:40]} | {r['direct_ms']} | {r['named_ms']} | {r['auto_ms']} "
            f"| {r['route']} | {r['escalated']} |"
        )


if __name__ == "__main__":
    main()
