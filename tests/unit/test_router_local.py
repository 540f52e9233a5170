"""The router inside the ingress (`LocalRouter`): the same answers as the Router deployment,
inline when the artifact needs no heavy part, queries batched while a prediction runs, live
swaps that fail no query, a bad swap that keeps the old artifact, and a loop that keeps
serving while the router predicts."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from orchestrator.backends.router import RouterDeployment
from orchestrator.backends.router_local import LocalRouter
from orchestrator.backends.types import RouteResult
from router_training.artifact import ArtifactError
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router

QUERIES = [
    "How do I fix a KeyError in Python?",
    "Can my landlord keep the deposit?",
    "a rash on my arm that itches",
    "Plan a weekend in Lisbon",
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("routers")
    first = train_router(DOMAINS_SAMPLE, base / "a", kind="tfidf", progress=False)
    second = train_router(
        DOMAINS_SAMPLE, base / "b", kind="tfidf", progress=False, abstain_target="fixed=0.3"
    )
    assert first.version != second.version
    return first.artifact, second.artifact


def test_answers_equal_the_router_deployments(artifacts: tuple[Path, Path]) -> None:
    local, deployment = LocalRouter(str(artifacts[0])), RouterDeployment(str(artifacts[0]))

    async def both() -> tuple[list[RouteResult], list[RouteResult]]:
        mine = await asyncio.gather(*(local.route(q) for q in QUERIES))
        theirs = [await deployment.route(q) for q in QUERIES]
        return list(mine), theirs

    mine, theirs = asyncio.run(both())
    local.close()
    for a, b in zip(mine, theirs, strict=True):  # concurrent queries against one at a time
        assert (a.label, a.runner_up, a.abstained) == (b.label, b.runner_up, b.abstained)
        assert a.artifact_version == b.artifact_version == local.version
        assert a.probability == pytest.approx(b.probability, abs=1e-9)
    assert [r.label for r in mine[:3]] == ["code", "legal", "medical"]


def test_a_query_needing_no_heavy_part_is_routed_inline_with_the_same_answer(
    artifacts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TF-IDF artifact (or a gated ensemble's sure gate) answers on the event loop: no
    thread hand-off, the same result as the thread's batch; with `batch_wait_timeout_s` > 0
    or a batch running, queries wait for a batch as before."""
    path = str(artifacts[0])
    inline, batched = LocalRouter(path), LocalRouter(path, batch_wait_timeout_s=0.001)
    threads: list[str] = []
    predict = inline._router.predict

    def on_thread(texts):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return predict(texts)

    monkeypatch.setattr(inline._router, "predict", on_thread)

    async def run() -> tuple[list[RouteResult], list[RouteResult]]:
        mine = [await inline.route(q) for q in QUERIES]
        return mine, [await batched.route(q) for q in QUERIES]

    mine, theirs = asyncio.run(run())
    inline.close()
    batched.close()
    assert threads == []  # never on the prediction thread
    assert mine == theirs
    assert [r.label for r in mine[:3]] == ["code", "legal", "medical"]


def test_queries_arriving_during_a_prediction_form_the_next_batch(
    artifacts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    router = LocalRouter(str(artifacts[0]), max_batch_size=8)
    sizes: list[int] = []
    predict = router._router.predict
    release = threading.Event()

    def slow_first(texts):  # type: ignore[no-untyped-def]
        sizes.append(len(texts))
        if len(sizes) == 1:
            release.wait(5)  # the first batch holds the thread while the others arrive
        return predict(texts)

    monkeypatch.setattr(router._router, "predict", slow_first)
    monkeypatch.setattr(router._router, "predict_quick", lambda texts: None)  # an encoder's query

    async def run() -> list[RouteResult]:
        first = asyncio.create_task(router.route(QUERIES[2]))
        await asyncio.sleep(0.05)  # the lone first query is predicting: it waited for nothing
        rest = [asyncio.create_task(router.route(f"side effects of drug {i}")) for i in range(19)]
        await asyncio.sleep(0.05)
        release.set()
        return [await first, *await asyncio.gather(*rest)]

    results = asyncio.run(run())
    router.close()
    assert [r.label for r in results] == ["medical"] * 20
    assert sizes == [1, 8, 8, 3]


def test_swap_during_traffic_fails_no_query(artifacts: tuple[Path, Path]) -> None:
    first, second = artifacts
    router = LocalRouter(str(first))
    old = router.version

    async def run() -> list[RouteResult]:
        tasks = [asyncio.create_task(router.route(QUERIES[i % 4])) for i in range(50)]
        swapping = asyncio.create_task(router.swap(str(second)))
        tasks += [asyncio.create_task(router.route(QUERIES[i % 4])) for i in range(50)]
        await swapping
        tasks += [asyncio.create_task(router.route(QUERIES[0])) for _ in range(5)]
        return await asyncio.gather(*tasks)

    results = asyncio.run(run())
    router.close()
    assert router.version != old and router.artifact_path == str(second)
    assert {r.artifact_version for r in results} <= {old, router.version}
    assert results[-1].artifact_version == router.version


def test_bad_swap_keeps_the_old_artifact(artifacts: tuple[Path, Path], tmp_path: Path) -> None:
    router = LocalRouter(str(artifacts[0]))
    version = router.version

    async def run() -> RouteResult:
        with pytest.raises(ArtifactError):
            await router.swap(str(tmp_path / "missing"))
        await router.swap(str(artifacts[0]))  # the path in use: nothing to do
        return await router.route("sue my landlord")

    assert asyncio.run(run()).artifact_version == version
    router.close()


def test_the_event_loop_keeps_serving_while_the_router_predicts(
    artifacts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    router = LocalRouter(str(artifacts[0]))
    predict = router._router.predict

    def slow(texts):  # type: ignore[no-untyped-def]
        time.sleep(1.0)  # an encoder's time, on the router's thread (releases the GIL)
        return predict(texts)

    monkeypatch.setattr(router._router, "predict", slow)
    monkeypatch.setattr(router._router, "predict_quick", lambda texts: None)  # an encoder's query

    async def run() -> bool:
        routing = asyncio.create_task(router.route(QUERIES[0]))
        await asyncio.sleep(0.01)  # another request's turn on the loop comes first
        served_meanwhile = not routing.done()
        assert (await routing).label == "code"
        return served_meanwhile

    assert asyncio.run(run())  # a router predicting on the loop would have finished first
    router.close()


def test_constructor_validates_eagerly(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a directory"):
        LocalRouter(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="max_batch_size"):
        LocalRouter(str(tmp_path), max_batch_size=0)


def test_difficulty_scores_equal_the_router_deployments(
    artifacts: tuple[Path, Path], difficulty_artifact: Path
) -> None:
    """With `router.difficulty_artifact`, the in-ingress router adds the same P(small is
    enough) as the Router deployment (the cascade's skip_below reads it)."""
    paths = (str(artifacts[0]), str(difficulty_artifact))
    local = LocalRouter(paths[0], difficulty_path=paths[1])
    deployment = RouterDeployment(paths[0], difficulty_path=paths[1])

    async def both() -> tuple[list[RouteResult], list[RouteResult]]:
        mine = await asyncio.gather(*(local.route(q) for q in QUERIES))
        return list(mine), [await deployment.route(q) for q in QUERIES]

    mine, theirs = asyncio.run(both())
    local.close()
    scores = [r.small_enough_probability for r in mine]
    assert all(s is not None for s in scores)
    for a, b in zip(mine, theirs, strict=True):
        assert a.small_enough_probability == pytest.approx(b.small_enough_probability, abs=1e-9)
    code_score, legal_score = scores[0], scores[1]
    assert code_score is not None and legal_score is not None
    assert code_score < 0.5 < legal_score  # the scorer calls code queries too hard
