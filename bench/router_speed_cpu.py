"""Router speed in wall time and in process CPU time, for a CPU shared with other jobs.

    .venv/bin/python bench/router_speed_cpu.py ART_TFIDF ART_OTHER ... [--repeats 3]

Per artifact and repeat (artifacts interleaved, so each repeat sees similar load): 300
single queries from clinc150/val.jsonl (p50/p99 of wall and CPU time per call, after 20
warm-up calls), then 30 batches of 64 (queries per wall second and per CPU-second). The file
is sorted by label, so queries are taken in a fixed shuffled order (``--seed``; ``--seed -1``
keeps the file order): a gated ensemble's cost depends on which queries it sees. Under a
load average well above the core count, a few-millisecond computation is preempted many
times and its wall time measures the queue, not the model; process CPU time does not.
For an ensemble, ``encoder_fraction`` is the share of the whole val file its encoder scores
(batches of 64, before the timed runs; 1.0 without a gate; 0 for other kinds) and
``timed_encoder_fraction`` the share among the timed queries.
Prints one JSON line per measurement, then the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def measure(path: Path, texts: list[str]) -> dict[str, float]:
    from router_training.artifact import load_router

    router = load_router(path)
    fraction = encoder_fraction(router, texts)
    counts = _counts(router)
    for text in texts[:20]:
        router.predict([text])
    wall, cpu = [], []
    for text in texts[:300]:
        start, start_cpu = time.perf_counter(), time.process_time()
        router.predict([text])
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    start, start_cpu = time.perf_counter(), time.process_time()
    for i in range(0, 30 * 64, 64):
        router.predict(texts[i : i + 64])
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    timed = _counts(router)
    return {
        "wall_p50_ms": float(np.median(wall) * 1e3),
        "wall_p99_ms": float(np.percentile(wall, 99) * 1e3),
        "cpu_p50_ms": float(np.median(cpu) * 1e3),
        "cpu_p99_ms": float(np.percentile(cpu, 99) * 1e3),
        "wall_qps": 30 * 64 / wall_s,
        "cpu_qps": 30 * 64 / cpu_s,
        "encoder_fraction": fraction,
        "timed_encoder_fraction": (timed[1] - counts[1]) / max(timed[0] - counts[0], 1),
        "load": os.getloadavg()[0],
    }


def _counts(router: Any) -> tuple[int, int]:
    """(queries scored, queries the encoder scored) of an ensemble; (0, 0) for other kinds."""
    scorer = router._scorer
    return getattr(scorer, "texts_scored", 0), getattr(scorer, "encoder_texts", 0)


def encoder_fraction(router: Any, texts: list[str]) -> float:
    """Share of ``texts`` (in batches of 64) an ensemble's encoder scores; 0 for other kinds."""
    scorer = router._scorer
    if not hasattr(scorer, "encoder_texts"):
        return 0.0
    before = scorer.texts_scored, scorer.encoder_texts
    for i in range(0, len(texts), 64):
        router.predict(texts[i : i + 64])
    return (scorer.encoder_texts - before[1]) / (scorer.texts_scored - before[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path, help="router artifact directories")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="query order; -1: file order")
    args = parser.parse_args()
    from router_training.data import read_labelled

    texts = read_labelled(DATA / "clinc150" / "val.jsonl", min_labels=1).texts
    if args.seed >= 0:
        order = np.random.default_rng(args.seed).permutation(len(texts))
        texts = [texts[i] for i in order]
    results: dict[str, list[dict[str, float]]] = {str(p): [] for p in args.artifacts}
    for repeat in range(args.repeats):
        for path in args.artifacts:
            row = measure(path, texts)
            results[str(path)].append(row)
            print(json.dumps({"repeat": repeat, "path": str(path), **row}), flush=True)
    for path, rows in results.items():
        medians = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
        print(json.dumps({"median_of": len(rows), "path": path, **medians}), flush=True)


if __name__ == "__main__":
    main()
