"""The Router deployment: loads a router artifact, batches concurrent queries, swaps artifacts.

A plain class: ``builder.py`` wraps it with ``serve.deployment(RouterDeployment)`` and tests
construct it directly. Inside a Serve replica concurrent ``route`` calls are batched by
``ray.serve.batch``; outside one (``serve.batch`` needs a replica context) a small asyncio
micro-batcher with the same parameters does the same job.

Swapping: ``reconfigure`` loads and validates the new artifact first (a bad one raises and the
old one stays), then replaces one reference. A batch reads that reference once, so every
request is answered wholly by the old or wholly by the new artifact and none fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from orchestrator.backends.router_swap import label_entry_problems, missing_labels_error
from orchestrator.backends.types import RouteResult
from router_training.artifact import ArtifactError, LoadedRouter, RoutePrediction, load_router

__all__ = [
    "DifficultyScorer",
    "RouteResult",
    "RouterDeployment",
    "check_batching",
    "load_difficulty",
    "with_difficulty",
]

log = logging.getLogger("spillway.router")


class RouterDeployment:
    """Routes query texts with the current router artifact."""

    def __init__(
        self,
        artifact_path: str,
        max_batch_size: int = 32,
        batch_wait_timeout_s: float = 0.005,
        difficulty_path: str | None = None,
        adapter_labels: Sequence[tuple[str, str]] = (),
    ) -> None:
        check_batching(max_batch_size, batch_wait_timeout_s)
        # (label, config entry) pairs a replacement artifact must cover (the config's
        # adapter routes; `orchestrator.config.adapter_label_entries`)
        self._adapter_labels = list(adapter_labels)
        self._router: LoadedRouter = load_router(artifact_path)
        self._artifact_path = str(artifact_path)
        self._difficulty = None if difficulty_path is None else load_difficulty(difficulty_path)
        self._batched = _make_batcher(self._route_batch, max_batch_size, batch_wait_timeout_s)
        log.info("router artifact %s loaded from %s", self._router.version, artifact_path)

    @property
    def version(self) -> str:
        return self._router.version

    @property
    def labels(self) -> list[str]:
        return list(self._router.labels)

    async def route(self, text: str) -> RouteResult:
        """Route one query; concurrent calls are predicted together in batches."""
        if not isinstance(text, str):
            raise TypeError(f"route takes a query string, got {type(text).__name__}")
        result: RouteResult = await self._batched(text)
        return result

    async def info(self) -> dict[str, Any]:
        """The loaded artifact's version, path and labels (for health and model listings)."""
        router = self._router
        return {
            "artifact_version": router.version,
            "artifact_path": str(router.path),
            "labels": list(router.labels),
            "out_of_scope_label": router.manifest.out_of_scope_label,
            "abstain_threshold": router.manifest.abstain_threshold,
        }

    async def swap(self, artifact_path: str) -> dict[str, Any]:
        """Load `artifact_path` (even the same path again) and route with it from the next
        batch on; returns `info()`. A bad artifact is returned as a value, `{"error": why}`,
        with the current artifact still in use (the admin API's `PUT /v1/admin/router`)."""
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, self._load_checked, artifact_path)
        except ArtifactError as error:
            return {"error": str(error)}
        old, self._router, self._artifact_path = self._router, new, str(artifact_path)
        log.info("router artifact swapped %s -> %s (%s)", old.version, new.version, artifact_path)
        return await self.info()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve calls this with the deployment's ``user_config``; swaps to a new artifact."""
        path = user_config.get("artifact_path")
        if path is None or str(path) == self._artifact_path:
            return
        new = self._load_checked(str(path))  # raises ArtifactError; the current one stays
        old, self._router, self._artifact_path = self._router, new, str(path)
        log.info("router artifact swapped %s -> %s (%s)", old.version, new.version, path)

    def _load_checked(self, path: str) -> LoadedRouter:
        """Load a replacement artifact; ArtifactError if it does not load or lacks a label
        the config routes to an adapter."""
        new = load_router(path)
        problems = label_entry_problems(self._adapter_labels, new.labels)
        if problems:
            raise missing_labels_error(path, new.labels, problems)
        return new

    async def _route_batch(self, texts: list[str]) -> list[RouteResult]:
        router = self._router  # one artifact for the whole batch, even if a swap happens
        loop = asyncio.get_running_loop()
        if len(texts) == 1:  # cheaper than a thread hop for one short query
            predictions = router.predict(texts)
        else:
            predictions = await loop.run_in_executor(None, router.predict, texts)
        return with_difficulty(
            [route_result(p, router.version) for p in predictions], texts, self._difficulty
        )


def _make_batcher(
    handler: Callable[[list[str]], Awaitable[list[RouteResult]]],
    max_batch_size: int,
    batch_wait_timeout_s: float,
) -> Callable[[str], Awaitable[RouteResult]]:
    """``serve.batch`` inside a replica; the local micro-batcher elsewhere."""
    from ray import serve
    from ray.serve.context import _get_internal_replica_context

    if _get_internal_replica_context() is not None:

        async def route_batch(texts: list[str]) -> list[RouteResult]:
            return await handler(texts)

        batched: Callable[[str], Awaitable[RouteResult]] = serve.batch(
            max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s
        )(route_batch)
        return batched
    return _MicroBatcher(handler, max_batch_size, batch_wait_timeout_s)


class _MicroBatcher:
    """Collects concurrent calls for up to ``wait_s`` (or ``max_size`` items), runs them once."""

    def __init__(
        self,
        handler: Callable[[list[str]], Awaitable[list[RouteResult]]],
        max_size: int,
        wait_s: float,
    ) -> None:
        self._handler = handler
        self._max_size = max_size
        self._wait_s = wait_s
        self._pending: list[tuple[str, asyncio.Future[RouteResult]]] = []
        self._flush: asyncio.TimerHandle | None = None

    def __call__(self, text: str) -> Awaitable[RouteResult]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RouteResult] = loop.create_future()
        self._pending.append((text, future))
        if len(self._pending) >= self._max_size:
            self._start(loop)
        elif self._flush is None:
            self._flush = loop.call_later(self._wait_s, self._start, loop)
        return future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._pending = self._pending[: self._max_size], self._pending[self._max_size :]
        if self._pending:
            self._flush = loop.call_later(self._wait_s, self._start, loop)
        if batch:
            loop.create_task(self._run(batch))

    async def _run(self, batch: list[tuple[str, asyncio.Future[RouteResult]]]) -> None:
        try:
            results = await self._handler([text for text, _ in batch])
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


class DifficultyScorer:
    """A router artifact with labels `true`/`false`: P(`true`) = P(the small model is enough)."""

    def __init__(self, router: LoadedRouter) -> None:
        if "true" not in router.labels:
            raise ArtifactError(
                f"{router.path}: labels are {router.labels}; a difficulty scorer is trained on "
                "boolean labels (`spillway router train --label-field small_correct`)"
            )
        self._router = router
        self._column = router.labels.index("true")

    @property
    def version(self) -> str:
        return self._router.version

    def small_enough(self, texts: list[str]) -> list[float]:
        probabilities = self._router.probabilities(texts)
        return [float(p) for p in probabilities[:, self._column]]

    def small_enough_quick(self, texts: list[str]) -> list[float] | None:
        """`small_enough`, when the scorer has it without its heavy part; else None."""
        probabilities = self._router.quick_probabilities(texts)
        if probabilities is None:
            return None
        return [float(p) for p in probabilities[:, self._column]]


def check_batching(max_batch_size: int, batch_wait_timeout_s: float) -> None:
    """Both router placements refuse the same impossible batching settings."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    if batch_wait_timeout_s < 0:
        raise ValueError(f"batch_wait_timeout_s must be >= 0, got {batch_wait_timeout_s}")


def with_difficulty(
    results: list[RouteResult], texts: list[str], scorer: DifficultyScorer | None
) -> list[RouteResult]:
    """`results` with the scorer's P(small is enough) for each text (unchanged without one)."""
    if scorer is None:
        return results
    scores = scorer.small_enough(texts)
    return [replace(r, small_enough_probability=s) for r, s in zip(results, scores, strict=True)]


def load_difficulty(path: str) -> DifficultyScorer:
    """Load and check a difficulty scorer; raises ArtifactError when it cannot be one."""
    scorer = DifficultyScorer(load_router(path))
    log.info("difficulty scorer %s loaded from %s", scorer.version, path)
    return scorer


def route_result(prediction: RoutePrediction, version: str) -> RouteResult:
    """The deployment's answer for one artifact prediction."""
    return RouteResult(
        label=prediction.label,
        probability=prediction.probability,
        runner_up=prediction.runner_up,
        runner_up_probability=prediction.runner_up_probability,
        abstained=prediction.abstained,
        artifact_version=version,
    )
