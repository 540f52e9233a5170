"""RouterDeployment without Ray: batching of concurrent calls and live artifact swaps."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest

from orchestrator.backends.router import RouterDeployment, RouteResult
from router_training.artifact import ArtifactError
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("routers")
    first = train_router(DOMAINS_SAMPLE, base / "a", kind="tfidf", progress=False)
    second = train_router(
        DOMAINS_SAMPLE, base / "b", kind="tfidf", progress=False, abstain_target="fixed=0.3"
    )
    assert first.version != second.version
    return first.artifact, second.artifact


def test_route_returns_result_with_artifact_version(artifacts: tuple[Path, Path]) -> None:
    deployment = RouterDeployment(str(artifacts[0]))
    result = asyncio.run(deployment.route("How do I fix a KeyError in Python?"))
    assert isinstance(result, RouteResult)
    assert result.label == "code"
    assert result.artifact_version == deployment.version
    assert result.to_dict()["artifact_version"] == deployment.version
    assert pickle.loads(pickle.dumps(result)) == result  # crosses Ray actors


def test_concurrent_calls_are_batched(
    artifacts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = RouterDeployment(str(artifacts[0]), max_batch_size=8, batch_wait_timeout_s=0.01)
    sizes: list[int] = []
    predict = deployment._router.predict

    def spy(texts):  # type: ignore[no-untyped-def]
        sizes.append(len(texts))
        return predict(texts)

    monkeypatch.setattr(deployment._router, "predict", spy)

    async def run() -> list[RouteResult]:
        texts = [f"what are the side effects of drug number {i}?" for i in range(20)]
        return await asyncio.gather(*(deployment.route(t) for t in texts))

    results = asyncio.run(run())
    assert [r.label for r in results] == ["medical"] * 20
    assert sum(sizes) == 20
    assert max(sizes) == 8 and len(sizes) == 3


def test_reconfigure_swaps_without_failing_requests(artifacts: tuple[Path, Path]) -> None:
    first, second = artifacts
    deployment = RouterDeployment(str(first))
    old_version = deployment.version

    async def run() -> list[RouteResult]:
        tasks = [asyncio.create_task(deployment.route("a rash on my arm")) for _ in range(50)]
        await asyncio.sleep(0)
        deployment.reconfigure({"artifact_path": str(second)})
        tasks += [asyncio.create_task(deployment.route("a rash on my arm")) for _ in range(50)]
        return await asyncio.gather(*tasks)

    results = asyncio.run(run())
    versions = {r.artifact_version for r in results}
    assert deployment.version != old_version
    assert versions <= {old_version, deployment.version}
    assert results[-1].artifact_version == deployment.version


def test_bad_new_artifact_keeps_the_old_one(artifacts: tuple[Path, Path], tmp_path: Path) -> None:
    deployment = RouterDeployment(str(artifacts[0]))
    version = deployment.version
    with pytest.raises(ArtifactError):
        deployment.reconfigure({"artifact_path": str(tmp_path / "missing")})
    assert deployment.version == version
    assert asyncio.run(deployment.route("sue my landlord")).artifact_version == version


def test_constructor_validates_eagerly(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a directory"):
        RouterDeployment(str(tmp_path / "missing"))


def test_difficulty_scorer_adds_small_enough_probability(
    artifacts: tuple[Path, Path], difficulty_artifact: Path
) -> None:
    deployment = RouterDeployment(str(artifacts[0]), difficulty_path=str(difficulty_artifact))

    async def run() -> list[RouteResult]:
        texts = ["How do I fix a KeyError in Python?", "What are the side effects of ibuprofen?"]
        return await asyncio.gather(*(deployment.route(t) for t in texts))

    hard, easy = asyncio.run(run())
    assert hard.label == "code" and easy.label == "medical"
    assert hard.small_enough_probability is not None and easy.small_enough_probability is not None
    assert 0.0 <= hard.small_enough_probability < 0.5 < easy.small_enough_probability <= 1.0
    plain = asyncio.run(RouterDeployment(str(artifacts[0])).route("What is a tort?"))
    assert plain.small_enough_probability is None


def test_a_domain_router_is_not_a_difficulty_scorer(artifacts: tuple[Path, Path]) -> None:
    with pytest.raises(ArtifactError, match="boolean labels"):
        RouterDeployment(str(artifacts[0]), difficulty_path=str(artifacts[0]))
