"""Spillway's own code per request, without Ray: the real FastAPI app, admission, query service
and SQLite ledger, in-process instant models (tests/fakes.py), called through httpx's ASGI
transport one request at a time. What is left of the load test's overhead after this is the
HTTP proxy, the Serve hop to the ingress replica and waiting for a CPU.

    python bench/ingress_inprocess.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.load import percentile
from orchestrator.api.app import create_app
from orchestrator.builder import assemble_replica
from orchestrator.config import validate_config_dict
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG, FakeModels

BODY = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Is a verbal contract binding?"}],
    "max_tokens": 8,
    "temperature": 0,
}


async def measure(ledger_dir: Path, requests: int, warmup: int = 50) -> dict[str, Any]:
    data = json.loads(json.dumps(CONFIG))
    data["ledger"] = {"url": f"sqlite:///{ledger_dir / 'ledger.db'}"}
    config = validate_config_dict(data)
    models = FakeModels(0.95, {"label": "legal", "probability": 0.8, "abstained": False})
    ledger = Ledger(config.ledger.url)
    ledger.start()
    app = create_app(assemble_replica(config, models.backends(), ledger))
    transport = httpx.ASGITransport(app=app)
    samples: list[float] = []
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://spillway", headers={"Authorization": "Bearer k"}
        ) as client:
            for i in range(warmup + requests):
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=BODY)
                response.raise_for_status()
                if i >= warmup:
                    samples.append((time.perf_counter() - started) * 1000.0)
    finally:
        ledger.close()
    return {
        "requests": requests,
        "p50_ms": round(percentile(samples, 50) or 0, 3),
        "p99_ms": round(percentile(samples, 99) or 0, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spillway-ingress-") as tmp:
        report = asyncio.run(measure(Path(tmp), args.requests))
    report["load_average"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
