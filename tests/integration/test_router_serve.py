"""The Router deployment under real Ray Serve: batched requests keep succeeding while the
artifact is swapped through the deployment's user_config (Serve reconfiguration)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router

QUERIES = [
    "Can I break my lease early in Ontario?",
    "What is the normal dose of ibuprofen for an adult?",
    "How do I parse a JSON file in Rust?",
    "Plan a 5-day trip to Lisbon for me.",
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    base = tmp_path_factory.mktemp("serve-routers")
    a = train_router(DOMAINS_SAMPLE, base / "a", kind="tfidf", progress=False)
    b = train_router(
        DOMAINS_SAMPLE, base / "b", kind="tfidf", progress=False, abstain_target="fixed=0.3"
    )
    return a.artifact, b.artifact, a.version, b.version


@pytest.fixture(scope="module")
def serve_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    ray = pytest.importorskip("ray")
    from ray import serve

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        logging_level="WARNING",
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 0})
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def test_swap_artifacts_while_requests_keep_succeeding(
    serve_session: None, artifacts: tuple[Path, Path, str, str]
) -> None:
    from ray import serve

    from orchestrator.backends.router import RouterDeployment

    first, second, first_version, second_version = artifacts
    deployment = serve.deployment(
        RouterDeployment,
        name="Router",
        ray_actor_options={"num_cpus": 0.25},
        max_ongoing_requests=64,
    )
    app_args = (str(first),)
    handle = serve.run(
        deployment.options(user_config={"artifact_path": str(first)}).bind(*app_args),
        name="router-swap",
        route_prefix=None,
    )
    seen: Counter[str] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            responses = [handle.route.remote(q) for q in QUERIES * 4]  # concurrent: batched
            for response in responses:
                try:
                    seen[response.result(timeout_s=30).artifact_version] += 1
                except BaseException as error:  # recorded and asserted on below
                    errors.append(error)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    _wait_for(lambda: seen[first_version] >= 32, "requests on the first artifact")
    serve.run(
        deployment.options(user_config={"artifact_path": str(second)}).bind(*app_args),
        name="router-swap",
        route_prefix=None,
    )
    _wait_for(lambda: seen[second_version] >= 32, "requests on the swapped-in artifact")
    stop.set()
    worker.join(timeout=60)

    assert errors == []
    assert set(seen) == {first_version, second_version}
    final = handle.route.remote(QUERIES[0]).result(timeout_s=30)
    assert final.artifact_version == second_version and final.label == "legal"


def _wait_for(condition, what: str, timeout_s: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
