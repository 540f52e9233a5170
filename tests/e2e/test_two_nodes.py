"""Spillway on a real two-node Ray cluster on this machine (issue 17): `ray start --head` and a
second `ray start --address ...` with its own resources, Spillway deployed to it as on a
cluster (Serve's proxy, `app_builder` from a config file, a PostgreSQL ledger), the small model
placed on the worker node and the large one on the head by custom resources.

Under load the worker node is killed (every process of it, SIGKILL: a lost machine) and
started again. The clients see the small model's answers fall back to the large model while
the worker is gone, and the small model answer again once it is back; every request ends in
an answer or a clean error, and every finished request has exactly one ledger row. The test
prints what the clients saw in each phase and how long full capacity took to return.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from bench import instant_backend
from bench.load_service import instant_models
from tests.e2e.conftest import REPO, free_port, local_config_data, write_test_config
from tests.e2e.faultload import Load, pids
from tests.postgres import PostgresUnavailable, start_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

RAY = Path(sys.executable).parent / "ray"
NODE_ENV = {
    "RAY_AUTH_MODE": "disabled",  # loopback only; the token would live in ~/.ray
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1",
}
DEPLOY = textwrap.dedent(
    """
    import sys
    import ray
    from ray import serve
    from orchestrator.builder import APP_NAME, app_builder

    address, port, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ray.init(address=address)
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    serve.run(app_builder({"config": config}), name=APP_NAME, route_prefix="/")
    """
)


@dataclass
class Cluster:
    """The nodes' `ray start` sessions (each node's processes share its session id)."""

    gcs_port: int
    temp_dir: str
    sessions: list[int] = field(default_factory=list)
    worker_session: int = 0

    def start_node(self, *args: str) -> int:
        command = [str(RAY), "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", *args]
        proc = subprocess.Popen(
            command,
            env=os.environ | NODE_ENV,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        self.sessions.append(proc.pid)
        return proc.pid

    def start_head(self) -> None:
        head = ["--head", "--port", str(self.gcs_port), "--temp-dir", self.temp_dir]
        self.start_node(*head, "--include-dashboard", "false", "--resources", '{"head": 1}')

    def start_worker(self) -> None:
        address = f"127.0.0.1:{self.gcs_port}"
        self.worker_session = self.start_node("--address", address, "--resources", '{"worker": 1}')

    def kill_worker(self) -> int:
        return _kill_session(self.worker_session)

    def kill_all(self) -> None:
        for session in self.sessions:
            _kill_session(session)


def _kill_session(session: int) -> int:
    killed = 0
    for pid in pids():
        try:
            if os.getsid(pid) == session:
                os.kill(pid, signal.SIGKILL)
                killed += 1
        except OSError:
            continue
    return killed


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    temp_dir = tempfile.mkdtemp(prefix="sw2n-")  # short: Ray's socket paths are limited
    nodes = Cluster(free_port(), temp_dir)
    try:
        nodes.start_head()
        nodes.start_worker()
        yield nodes
    finally:
        nodes.kill_all()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _config(tmp: Path, backend_url: str, db_url: str, port: int) -> Path:
    models = instant_models(backend_url)
    for name in ("small", "large"):  # deployments of their own, to place on a node each
        models[name] |= {"placement": "deployment", "num_cpus": 0.25}
    models["small"]["resources"] = {"worker": 0.01}  # the small model lives on the worker
    models["large"]["resources"] = {"head": 0.01}
    server = local_config_data()["server"] | {
        "http_server": "serve_proxy",
        "ingress_replicas": 2,
        "state_dir": str(tmp / "state"),
        "port": port,
    }
    calls = {"timeout_s": 5.0, "retries": 1, "backoff_s": 0.2}
    models["small"]["calls"] = calls
    path, _ = write_test_config(tmp, models | {"server": server})
    data = yaml.safe_load(path.read_text())
    data["server"]["port"] = port
    data["ledger"] = {"url": db_url}
    path.write_text(yaml.safe_dump(data))
    return path


def _answered_by_small(load: Load, phase: str) -> int:
    return sum(
        1
        for o in load.outcomes
        if o.phase == phase
        and o.kind == "answered"
        and o.info.get("answered_by") != "spillway-large"
    )


def _wait_small_back(load: Load, timeout_s: float) -> float:
    started = time.monotonic()
    while _answered_by_small(load, "worker back") == 0:
        assert time.monotonic() - started < timeout_s, f"small never came back: {load.by_phase()}"
        time.sleep(0.2)
    return time.monotonic() - started


def test_worker_node_lost_and_back_under_load(
    cluster: Cluster, router_built: None, tmp_path: Path
) -> None:
    try:
        pg = start_server()
    except PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL server: {error}")
    port = free_port()
    try:
        db_url = pg.create_database("twonodes")
        with instant_backend.running(free_port()) as backend_url:
            config = _config(tmp_path, backend_url, db_url, port)
            address = f"127.0.0.1:{cluster.gcs_port}"
            subprocess.run(
                [sys.executable, "-c", DEPLOY, address, str(port), str(config)],
                env=os.environ | NODE_ENV,
                cwd=REPO,
                check=True,
                timeout=300,
            )
            base_url = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base_url}/readyz", timeout=30).status_code == 200
            report = _lose_and_restore_worker(cluster, base_url)
            load: Load = report.pop("load")  # type: ignore[assignment]
            rows = _ledger_ids(db_url, load.query_ids())
    finally:
        pg.destroy()
    print("two nodes:", json.dumps(report, indent=1))
    bad = [o for o in load.outcomes if o.kind not in {"answered", "error", "broken"}]
    assert not bad, load.by_phase()
    finished = load.query_ids()
    assert finished <= set(rows), f"{len(finished - set(rows))} finished requests have no row"
    assert len(rows) == len(set(rows))
    assert len(set(rows) - finished) <= load.count("broken")  # rows of cut-off requests only
    reasons = Counter(o.info.get("reason") for o in load.outcomes if o.phase == "worker down")
    assert reasons["small_unavailable"] > 0, reasons  # the worker's model really went away
    assert _answered_by_small(load, "both nodes") > 0


def _lose_and_restore_worker(cluster: Cluster, base_url: str) -> dict[str, object]:
    with Load(base_url, "sk-spillway-local", workers=3) as load:
        load.phase = "both nodes"
        load.wait_for("answered", 10, 120)
        load.phase = "worker down"
        killed = cluster.kill_worker()
        load.wait_for("answered", load.count() + 10, 180)
        load.phase = "worker back"
        restarted = time.monotonic()
        cluster.start_worker()
        node_up_s = time.monotonic() - restarted
        small_back_s = _wait_small_back(load, 240) + node_up_s
        load.wait_for("answered", load.count() + 10, 120)
    return {
        "worker_processes_killed": killed,
        "worker_node_start_s": round(node_up_s, 1),
        "small_answers_again_after_s": round(small_back_s, 1),
        "by_phase": load.by_phase(),
        "load": load,
    }


def _ledger_ids(db_url: str, expected: set[str]) -> list[str]:
    """Every stored query id, once `expected` are all there (or after a minute)."""
    engine = sa.create_engine(db_url)
    deadline = time.monotonic() + 60
    try:
        while True:
            with engine.connect() as connection:
                ids = list(connection.scalars(sa.text("SELECT query_id FROM ledger")))
            if time.monotonic() > deadline or expected <= set(ids):
                return ids
            time.sleep(1)
    finally:
        engine.dispose()
