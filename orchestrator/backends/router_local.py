"""The router inside the ingress replica (`router.placement: ingress`): no deployment hop.

The artifact is loaded in the replica itself. A query the artifact can route without its
heavy part (a gated ensemble's TF-IDF gate is sure, ~0.1 ms; `LoadedRouter.predict_quick`) is
routed right on the event loop when no batch is running: two thread hand-offs (each a wake-up
of a thread that Ray runs at niceness 15) cost more than that. The others run on one worker
thread, so the replica's event loop keeps serving while the encoder computes (ONNX Runtime and
NumPy release the GIL), and queries batch themselves: those that arrive while a batch is being
predicted form the next batch (at most `max_batch_size`), so a lone query waits for nothing
and a burst is predicted together. `batch_wait_timeout_s` > 0 holds a new batch open that long
first (and turns the inline path off: every query then waits for its batch).

Swapping (`swap`): the new artifact is loaded and validated off the event loop first (a bad
one raises and the old stays), then one reference is replaced. A batch reads that reference
once, so every query is answered wholly by the old or wholly by the new artifact, none fails.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from orchestrator.backends.router import (
    DifficultyScorer,
    check_batching,
    load_difficulty,
    route_result,
    with_difficulty,
)
from orchestrator.backends.types import RouteResult
from router_training.artifact import LoadedRouter, load_router

__all__ = ["LocalRouter"]

log = logging.getLogger("spillway.router")


class LocalRouter:
    """Routes query texts with the current artifact, in this process."""

    def __init__(
        self,
        artifact_path: str,
        max_batch_size: int = 32,
        batch_wait_timeout_s: float = 0.0,
        difficulty_path: str | None = None,
    ) -> None:
        check_batching(max_batch_size, batch_wait_timeout_s)
        self._router: LoadedRouter = load_router(artifact_path)
        self._artifact_path = str(artifact_path)
        # P(small is enough) for the cascade's skip_below (router.difficulty_artifact)
        self._difficulty: DifficultyScorer | None = None
        if difficulty_path is not None:
            self._difficulty = load_difficulty(difficulty_path)
        self._max_batch_size = max_batch_size
        self._wait_s = batch_wait_timeout_s
        self._pending: list[tuple[str, asyncio.Future[RouteResult]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spillway-router")
        log.info("router artifact %s loaded in the ingress from %s", self.version, artifact_path)

    @property
    def version(self) -> str:
        return self._router.version

    @property
    def artifact_path(self) -> str:
        return self._artifact_path

    async def route(self, text: str) -> RouteResult:
        """Route one query; queries that arrive while a batch runs go in the next one."""
        if not isinstance(text, str):
            raise TypeError(f"route takes a query string, got {type(text).__name__}")
        if not self._draining and self._wait_s == 0:
            quick = self._quick(text)
            if quick is not None:
                return quick
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RouteResult] = loop.create_future()
        self._pending.append((text, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await future

    async def info(self) -> dict[str, Any]:
        """The loaded artifact's version, path and labels (as the Router deployment's)."""
        router = self._router
        return {
            "artifact_version": router.version,
            "artifact_path": str(router.path),
            "labels": list(router.labels),
            "out_of_scope_label": router.manifest.out_of_scope_label,
            "abstain_threshold": router.manifest.abstain_threshold,
        }

    async def swap(self, artifact_path: str, reload: bool = False) -> None:
        """Load `artifact_path` and route with it from the next batch on; the same path again
        does nothing unless `reload` (the admin API reloads a directory retrained in place).
        Raises (ArtifactError) with the current artifact still in use."""
        if str(artifact_path) == self._artifact_path and not reload:
            return
        loop = asyncio.get_running_loop()
        new = await loop.run_in_executor(None, load_router, artifact_path)
        old, self._router, self._artifact_path = self._router, new, str(artifact_path)
        log.info("router artifact swapped %s -> %s (%s)", old.version, new.version, artifact_path)

    def close(self) -> None:
        """Stop the prediction thread (queries still pending are answered first)."""
        self._thread.shutdown(wait=False)

    def _quick(self, text: str) -> RouteResult | None:
        """The route (and difficulty) computed inline, when both scorers have it without
        their heavy part; None: the query goes to the prediction thread."""
        router = self._router  # one artifact for the whole answer, even during a swap
        predictions = router.predict_quick([text])
        if predictions is None:
            return None
        result = route_result(predictions[0], router.version)
        if self._difficulty is None:
            return result
        scores = self._difficulty.small_enough_quick([text])
        if scores is None:
            return None
        return replace(result, small_enough_probability=scores[0])

    def _predict(self, router: LoadedRouter, texts: list[str]) -> list[RouteResult]:
        """One batch's routes (and difficulty scores), on the prediction thread."""
        predictions = router.predict(texts)
        results = [route_result(p, router.version) for p in predictions]
        return with_difficulty(results, texts, self._difficulty)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                if self._wait_s > 0:
                    await asyncio.sleep(self._wait_s)
                size = self._max_batch_size
                batch, self._pending = self._pending[:size], self._pending[size:]
                router = self._router  # one artifact for the whole batch, even during a swap
                texts = [text for text, _ in batch]
                try:
                    results = await loop.run_in_executor(self._thread, self._predict, router, texts)
                except Exception as error:
                    _settle(batch, error=error)
                    continue
                _settle(batch, results)
        finally:
            self._draining = False


def _settle(
    batch: list[tuple[str, asyncio.Future[RouteResult]]],
    results: list[RouteResult] | None = None,
    error: Exception | None = None,
) -> None:
    for index, (_, future) in enumerate(batch):
        if future.done():  # the caller gave up (timeout, client gone)
            continue
        if results is None:
            future.set_exception(error or RuntimeError("no prediction"))
        else:
            future.set_result(results[index])
