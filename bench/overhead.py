"""The latency Spillway adds over calling the same vLLM engine directly, measured in one run.

Phase 1 builds the small model's engine in this process (the same `LLMDeployment` the service
uses, with the same engine settings) and times each request alone. Phase 2 stops it, starts
Spillway from the same config (cascade threshold 0, so only the small model answers and the
difference is orchestration: HTTP, ingress, router, deployment handles, ledger) and sends the
same requests through the official openai client. Reports medians and p90 per phase.

    .venv/bin/python bench/overhead.py [--config serve_config/local.yaml] [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

PROMPTS = [
    "Can my landlord keep my security deposit?",
    "What is the usual dose of ibuprofen for an adult?",
    "How do I reverse a list in Python?",
    "What is the capital of France?",
    "Is a verbal contract binding?",
    "What are the symptoms of the flu?",
    "Write a SQL query that counts rows per day.",
    "How tall is Mount Everest?",
]
MAX_TOKENS = 16


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
        "n": len(ordered),
    }


async def _direct(config: Any, n: int, adapters: list[str | None]) -> list[list[float]]:
    """One engine (AsyncLLM lives on one event loop), timed per adapter in turn."""
    from orchestrator.backends.llm import LLMDeployment

    deployment = LLMDeployment(config.small.engine)  # type: ignore[arg-type]
    try:
        return [await _time_direct(deployment, n, adapter) for adapter in adapters]
    finally:
        deployment.shutdown()


async def _time_direct(deployment: Any, n: int, adapter: str | None) -> list[float]:
    from orchestrator.backends.llm import GenerationRequest

    samples = []
    for i in range(n + 3):
        request = GenerationRequest(
            messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            adapter=adapter,
            max_tokens=MAX_TOKENS,
            temperature=0.0,
        )
        started = time.perf_counter()
        await deployment.generate(request)
        if i >= 3:  # warm-up excluded
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def _through_spillway(base_url: str, key: str, n: int, model: str) -> list[float]:
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    samples = []
    for i in range(n + 3):
        started = time.perf_counter()
        client.chat.completions.create(
            model=model,
            max_tokens=MAX_TOKENS,
            temperature=0,
            messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        )
        if i >= 3:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_config/local.yaml")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args()

    from cascade.policy import CascadePolicy, RoutePolicy
    from orchestrator.config import load_config
    from orchestrator.runtime import apply_env, runtime_env_vars, start, stop, with_address

    config = load_config(args.config)
    config.cascade = CascadePolicy(default=RoutePolicy(threshold=0.0))
    config.ledger.url = "sqlite:///" + str(Path(config.server.state_dir) / "bench-ledger.db")
    apply_env(runtime_env_vars(config))

    results: dict[str, Any] = {}
    base, legal = asyncio.run(_direct(config, args.requests, [None, "legal"]))
    results["direct_base"], results["direct_legal"] = _summary(base), _summary(legal)
    start(with_address(config, None, args.port))
    try:
        url, key = f"http://127.0.0.1:{args.port}", "sk-spillway-local"
        small = config.small.served_name
        results["spillway_base"] = _summary(_through_spillway(url, key, args.requests, small))
        results["spillway_legal"] = _summary(_through_spillway(url, key, args.requests, "legal"))
        results["spillway_auto"] = _summary(_through_spillway(url, key, args.requests, "auto"))
    finally:
        stop()
    for path in ("base", "legal"):
        direct = results[f"direct_{path}"]["median_ms"]
        results[f"added_{path}_ms"] = results[f"spillway_{path}"]["median_ms"] - direct
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
