"""Tokens per second of each local engine: one request alone and a batch of 8, with the base
model and with a LoRA adapter, all in one run (the LoRA slowdown is the ratio of the two).

Each engine is the service's own `LLMDeployment` built from the config's engine settings, in
this process, one after the other (so they do not share the cores). Generation is greedy with
`ignore_eos`-like fixed lengths: every request asks for `--tokens` tokens of a long answer and
the rate counts the tokens actually produced. Reports the median of `--repeats` runs (base and
LoRA interleaved), and the resident memory of the engine's processes.

    .venv/bin/python bench/engines.py [--config serve_config/local.yaml] [--tokens 64]
        [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

PROMPT = "Explain in detail, step by step, how {topic} works."
TOPICS = ["a bank loan", "the immune system", "a hash table", "a court appeal",
          "photosynthesis", "a compiler", "a mortgage", "vaccination"]  # fmt: skip


def _requests(adapter: str | None, count: int, tokens: int) -> list[Any]:
    from orchestrator.backends.types import GenerationRequest

    return [
        GenerationRequest(
            messages=[{"role": "user", "content": PROMPT.format(topic=TOPICS[i % len(TOPICS)])}],
            adapter=adapter,
            max_tokens=tokens,
        )
        for i in range(count)
    ]


async def _rate(engine: Any, adapter: str | None, count: int, tokens: int) -> float:
    requests = _requests(adapter, count, tokens)
    started = time.perf_counter()
    results = await asyncio.gather(*(engine.generate(r) for r in requests))
    seconds = time.perf_counter() - started
    return sum(r.completion_tokens for r in results) / seconds


def _memory_gib(pid: int) -> float:
    """Proportional set size (PSS: shared pages split among their users, so libraries loaded
    by several processes count once) of a process and its children; the engine core and its
    worker run in children."""
    import psutil

    process = psutil.Process(pid)
    total = sum(p.memory_full_info().pss for p in [process, *process.children(recursive=True)])
    return round(total / 2**30, 2)


async def _measure_engine(settings: Any, tokens: int, repeats: int) -> dict[str, Any]:
    import os

    from orchestrator.backends.llm import LLMDeployment

    engine = LLMDeployment(settings.model_dump(mode="json"))
    try:
        await engine.warm_up()
        adapter = next(iter(settings.adapters), None)
        report: dict[str, Any] = {"model": Path(settings.model).name}
        cells = [("base", None)] + ([("lora", adapter)] if adapter else [])
        rates: dict[str, list[float]] = {}
        # Interleaved (base, LoRA, base, LoRA, ...) so the machine's drift hits both alike.
        for _ in range(repeats):
            for count in (1, 8):
                for label, name in cells:
                    rate = await _rate(engine, name, count, tokens)
                    rates.setdefault(f"{label}_{count}_tok_s", []).append(rate)
        report.update({key: round(statistics.median(v), 1) for key, v in rates.items()})
        if adapter:
            for count in (1, 8):
                ratio = report[f"lora_{count}_tok_s"] / report[f"base_{count}_tok_s"]
                report[f"lora_slowdown_{count}"] = round(1 - ratio, 3)
        report["memory_gib"] = _memory_gib(os.getpid())
        return report
    finally:
        engine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="serve_config/local.yaml")
    parser.add_argument("--tokens", type=int, default=64, help="tokens asked per request")
    parser.add_argument("--repeats", type=int, default=5, help="runs per cell (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    from orchestrator.config import load_config

    config = load_config(Path(args.config))
    report = {}
    for name in ("small", "large"):
        settings = getattr(config, name).engine
        if settings is not None:
            report[name] = asyncio.run(_measure_engine(settings, args.tokens, args.repeats))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, row in report.items():
        print(name, " ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
