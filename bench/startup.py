"""How long the embedded default takes to build and to start, and how much memory it holds.

1. `spillway models build` into a state directory (`--fresh`: an empty temporary one, so the
   model parts are downloaded and converted and the router trained as on a fresh machine);
2. `spillway serve` on local.yaml pointed at that state directory, timed until `/readyz` says
   ready (the engines and adapters are warmed before that);
3. the README's legal question through the `openai` client, then the same question again
   (first and second request latency as the client sees them);
4. the proportional memory (PSS) of every process of the service: the CLI, Ray, the replicas
   and the engine processes (found as descendants of the CLI and of Ray's raylet);
5. SIGTERM, and the exit status.

    .venv/bin/python bench/startup.py [--fresh] [--state-dir .spillway] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import free_port, local_config_data  # noqa: E402

QUESTION = "Can my landlord keep my security deposit?"


def _build(state_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "spillway"), "models", "build", "--state-dir",
         str(state_dir), "--no-progress"],
        check=True, cwd=REPO,
    )  # fmt: skip
    return time.perf_counter() - started


def _config(state_dir: Path, work: Path) -> tuple[Path, int]:
    data = local_config_data(REPO / "serve_config" / "local.yaml")
    text = json.dumps(data).replace(str(REPO / ".spillway"), str(state_dir.resolve()))
    data = json.loads(text)
    port = free_port()
    data["server"]["port"] = port
    data["ledger"]["url"] = f"sqlite:///{work / 'ledger.db'}"
    path = work / "spillway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 900) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"spillway serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("not ready")


def _ask(url: str) -> tuple[float, dict[str, Any], str]:
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="sk-spillway-local", max_retries=0)
    started = time.perf_counter()
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": QUESTION}]
    )
    seconds = time.perf_counter() - started
    return seconds, (reply.model_extra or {})["spillway"], reply.choices[0].message.content or ""


def _service_memory_gib(cli_pid: int) -> float:
    """PSS of the CLI's process tree and of every Ray process (Ray daemonizes some)."""
    import psutil

    procs = {cli_pid: psutil.Process(cli_pid)}
    for child in procs[cli_pid].children(recursive=True):
        procs[child.pid] = child
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "ray" in cmdline and ("raylet" in cmdline or "gcs_server" in cmdline):
            procs[proc.pid] = proc
            for child in proc.children(recursive=True):
                procs[child.pid] = child
    total = 0
    for proc in procs.values():
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return round(total / 2**30, 2)


def _serve(state_dir: Path, work: Path) -> dict[str, Any]:
    config, port = _config(state_dir, work)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "spillway"), "serve", "--config", str(config)],
        cwd=REPO, stdout=(work / "serve.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        ready = _wait_ready(url, proc)
        first, info, text = _ask(url)
        second, _, _ = _ask(url)
        memory = _service_memory_gib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    return {
        "start_to_ready_s": round(ready, 1),
        "process_start_to_ready_s": round(time.perf_counter() - started, 1),
        "first_request_s": round(first, 2),
        "second_request_s": round(second, 2),
        "route": info["route"],
        "adapter": info["adapter"],
        "confidence": info["confidence"],
        "escalated": info["escalated"],
        "answer": text[:300],
        "service_memory_gib": memory,
        "exit_status": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="build into an empty state dir")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".spillway")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spillway-startup-") as tmp:
        work = Path(tmp)
        state_dir = work / "state" if args.fresh else args.state_dir
        report: dict[str, Any] = {"fresh": args.fresh, "build_s": round(_build(state_dir), 1)}
        report.update(_serve(state_dir, work))
        os.sync()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
