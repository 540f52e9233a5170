"""Router benchmarks on ../shared/data: every recipe beside the TF-IDF baseline, same run.

    .venv/bin/python bench/router_bench.py --recipes tfidf,hybrid --datasets clinc,mmlu

CLINC150: train on clinc150/train.jsonl (the trainer holds out 10% of it, stratified, for
early stopping, temperature and the abstain threshold), evaluate on clinc150/val.jsonl.
MMLU-Pro: a stratified 80/20 split of mmlu_pro/questions.jsonl by --seed; train on the 80%
(same internal hold-out), evaluate on the 20%. Speed (single-query p50/p99, batch-64
throughput) is measured --repeats times per model and the medians are reported, with the
machine's load average, because the CPU is shared. Results: one JSON object on stdout (and
--out FILE).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from router_training.metric_names import DEFAULT_GATE_TARGET

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"

#: recipe name -> train_router keyword arguments
RECIPES: dict[str, dict[str, Any]] = {
    "tfidf": {"kind": "tfidf"},
    "hybrid": {"kind": "hybrid"},
    "bert-tiny": {"kind": "bert", "epochs": 12},
    "minilm": {"kind": "bert", "base_model": "minilm", "epochs": 2},
    "minilm-l3": {"kind": "bert", "base_model": "minilm", "keep_layers": 3, "epochs": 2},
    # fine-tuned MiniLM (fused ONNX graph) + TF-IDF, log-probabilities weighted on the
    # hold-out; threshold: at most 1% of held-out in-scope queries abstain
    "ensemble": {
        "kind": "ensemble",
        "base_model": "minilm",
        "epochs": 2,
        "onnx_optimization": "fused",
        "abstain_target": "abstain_rate<=0.01",
        "ensemble_gate": "none",
    },
    # the latency side of the frontier: a 3-layer MiniLM fine-tuned at that depth, int8
    "ensemble-l3-int8": {
        "kind": "ensemble",
        "base_model": "minilm",
        "keep_layers": 3,
        "epochs": 2,
        "learning_rate": 2e-4,
        "onnx_optimization": "int8",
        "abstain_target": "abstain_rate<=0.01",
        "ensemble_gate": "none",
    },
    "ensemble-int8": {
        "kind": "ensemble",
        "base_model": "minilm",
        "epochs": 2,
        "onnx_optimization": "int8",
        "abstain_target": "abstain_rate<=0.01",
        "ensemble_gate": "none",
    },
}
# the same ensembles gated: TF-IDF answers alone where it is sure (docs/router.md)
RECIPES.update(
    {
        f"{name}-gated": {**RECIPES[name], "ensemble_gate": DEFAULT_GATE_TARGET}
        for name in ("ensemble", "ensemble-int8", "ensemble-l3-int8")
    }
)
MAX_LENGTH = {"clinc": 32, "mmlu": 128}


def mmlu_split(seed: int, work: Path) -> tuple[Path, Path]:
    from router_training.data import read_labelled, stratified_split

    source = DATA / "mmlu_pro" / "questions.jsonl"
    data = read_labelled(source)
    train, test = stratified_split(data, 0.2, seed)
    paths = []
    for part, name in ((train, "train"), (test, "test")):
        path = work / f"mmlu_{name}.jsonl"
        rows = (
            json.dumps({"text": t, "label": y})
            for t, y in zip(part.texts, part.labels, strict=True)
        )
        path.write_text("\n".join(rows) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def run_one(recipe: str, dataset: str, train: Path, test: Path, args: Any, work: Path) -> dict:
    from router_training.evaluate import evaluate_router
    from router_training.train import train_router

    options = dict(RECIPES[recipe])
    if options["kind"] in ("bert", "ensemble"):
        options.setdefault("max_length", MAX_LENGTH[dataset])
    out = work / f"{recipe}-{dataset}"
    cpu_before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    load_before = os.getloadavg()[0]
    report = train_router(train, out, seed=args.seed, progress=False, **options)
    cpu_seconds = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu_before
    quality = evaluate_router(out, test, speed=False)
    curve = tradeoff(out, test) if quality.get("oos_recall") is not None else None
    speeds = [evaluate_router(out, test, speed=True) for _ in range(args.repeats)]
    keys = ("latency_ms_p50", "latency_ms_p99", "throughput_qps")
    result = {
        "recipe": recipe,
        "dataset": dataset,
        "artifact_version": report.version,
        "train_seconds": round(report.seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "load_average_during_training": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **{k: quality[k] for k in _QUALITY},
        **{k: round(statistics.median(s[k] for s in speeds), 3) for k in keys},
        "speed_repeats": {k: [round(s[k], 3) for s in speeds] for k in keys},
        "options": {k: str(v) for k, v in options.items()},
        "oos_tradeoff_on_eval_set": curve,
    }
    print(json.dumps(result), flush=True)
    return result


def tradeoff(artifact: Path, test: Path) -> list[dict[str, float]]:
    """In-scope accuracy and out-of-scope recall at fixed thresholds, on the evaluation set
    itself (an oracle view of what a better-chosen threshold could give, not a result)."""
    import numpy as np

    from router_training.artifact import load_router
    from router_training.data import read_labelled

    router = load_router(artifact)
    data = read_labelled(test, min_labels=1)
    probs = np.concatenate(
        [router.probabilities(data.texts[i : i + 512]) for i in range(0, len(data), 512)]
    )
    truth = np.array([router.labels.index(label) for label in data.labels])
    oos = router.labels.index(router.manifest.out_of_scope_label or "")
    top, confidence, in_scope = probs.argmax(1), probs.max(1), truth != oos
    rows = []
    for threshold in (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        abstained = (confidence < threshold) | (top == oos)
        rows.append(
            {
                "threshold": threshold,
                "in_scope_accuracy": round(
                    float(((top == truth) & ~abstained)[in_scope].mean()), 4
                ),
                "oos_recall": round(float(abstained[~in_scope].mean()), 4),
            }
        )
    return rows


_QUALITY = (
    "accuracy",
    "macro_f1",
    "argmax_accuracy",
    "in_scope_accuracy",
    "oos_recall",
    "abstain_rate",
    "abstain_threshold",
    "ece",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", default="tfidf,hybrid", help=f"of {sorted(RECIPES)}")
    parser.add_argument("--datasets", default="clinc,mmlu", help="clinc and/or mmlu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="speed repeats (median)")
    parser.add_argument("--out", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="keep the trained artifacts in this directory")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"shared data not found at {DATA}")
    recipes = args.recipes.split(",")
    if "tfidf" not in recipes:
        recipes.insert(0, "tfidf")  # the baseline is always measured in the same run
    results = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets.split(","):
            if dataset == "clinc":
                train, test = DATA / "clinc150" / "train.jsonl", DATA / "clinc150" / "val.jsonl"
            else:
                train, test = mmlu_split(args.seed, work)
            for recipe in recipes:
                results.append(run_one(recipe, dataset, train, test, args, work))
    summary = {
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "wall_seconds": round(time.time() - started, 1),
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
