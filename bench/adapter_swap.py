"""Adding and promoting adapter versions in a running service under load.

Starts `spillway serve` as the adapter e2e test does (local.yaml's real small model and router,
the tiny large model, a private state directory), keeps `--concurrency` clients asking `legal`
and `auto` questions, and `--rounds` times: adds `--adapter` as a new version of `legal`, times
the add and the first answer from the new version, promotes it, times the first answer of
`legal` from it. Reports every request's outcome (the target is 0 failed) and the load's
latency before the first add against during the adds (medians, same run).

    python -m bench.adapter_swap --adapter DIR [--rounds 5] [--concurrency 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import LOCAL_CONFIG, RunningService, start_service, stop_service
from tests.e2e.test_adapter_lifecycle import lifecycle_overrides

QUESTION = "Can my landlord keep my security deposit?"


class Load:
    """Clients asking in a loop; each outcome is (start time, seconds, ok, detail)."""

    def __init__(self, service: RunningService, concurrency: int) -> None:
        self.service, self.stop = service, threading.Event()
        self.outcomes: list[tuple[float, float, bool, str]] = []
        models = ["legal", "auto"] * concurrency
        self.threads = [threading.Thread(target=self._run, args=(m,)) for m in models[:concurrency]]

    def _run(self, model: str) -> None:
        client = self.service.client()
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=8
                )
                ok, detail = True, ""
            except Exception as error:  # counted, not raised: the benchmark reports them
                ok, detail = False, repr(error)
            self.outcomes.append((started, time.perf_counter() - started, ok, detail))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def _admin(service: RunningService, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(
        method,
        f"{service.base_url}/v1/admin/adapters{path}",
        json=body,
        headers={"Authorization": f"Bearer {service.api_key}"},
        timeout=300,
    )
    response.raise_for_status()
    return response.json()


def _first_answer(service: RunningService, model: str, version: str) -> float:
    started = time.perf_counter()
    reply = service.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=8
    )
    assert reply.model_extra["spillway"]["adapter_version"] == version, reply.model_extra
    return time.perf_counter() - started


def _round(service: RunningService, adapter: Path) -> dict[str, float]:
    started = time.perf_counter()
    added = _admin(service, "POST", "", {"name": "legal", "path": str(adapter)})
    add_s = time.perf_counter() - started
    version = added["added"]
    first_s = _first_answer(service, version, version)
    promote_started = time.perf_counter()
    _admin(service, "POST", "/legal/promote", {"version": int(version.split("@")[1])})
    promoted_first = (
        time.perf_counter() - promote_started + _first_answer(service, "legal", version)
    )
    return {
        "add_s": add_s,
        "add_to_first_answer_s": add_s + first_s,
        "promote_to_first_answer_s": promoted_first,
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="adapter-swap-"))
    service, proc = start_service(tmp, lifecycle_overrides(tmp), LOCAL_CONFIG)
    try:
        load = Load(service, args.concurrency)
        load.start()
        time.sleep(args.warm_s)
        adds_started = time.perf_counter()
        rounds = [_round(service, args.adapter) for _ in range(args.rounds)]
        time.sleep(2)
        load.finish()
    finally:
        stop_service(proc)
    before = [s for t, s, ok, _ in load.outcomes if ok and t < adds_started]
    during = [s for t, s, ok, _ in load.outcomes if ok and t >= adds_started]
    failed = [detail for _, _, ok, detail in load.outcomes if not ok]
    return {
        "rounds": rounds,
        "median": {k: _median([r[k] for r in rounds]) for k in rounds[0]},
        "requests": len(load.outcomes),
        "failed": len(failed),
        "failures": failed[:10],
        "latency_before_adds_p50_s": _median(before),
        "latency_during_adds_p50_s": _median(during),
        "concurrency": args.concurrency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, required=True, help="PEFT adapter directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--warm-s", type=float, default=20.0, help="load before the first add")
    parser.add_argument("--out", type=Path, help="write the result here as JSON")
    args = parser.parse_args()
    text = json.dumps(run(args), indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
