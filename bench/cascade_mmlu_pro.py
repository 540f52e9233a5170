"""Cascade benchmark on MMLU-Pro: a pre-generation difficulty scorer against a random policy.

For each small/large model pair: build outcome records from ../shared/data/mmlu_pro (real
per-question correctness of both models, costs from estimated tokens at hosted list prices),
split them per category into a training and a held-out part (seeded), train a TF-IDF +
logistic-regression difficulty scorer on the training part ("was the small model enough?"),
and evaluate it on the held-out part with cascade.evaluate in `route` mode (the scorer runs
before generation, so each query pays for one model). A random policy is measured in the same
run, per category and per route label. Thresholds calibrated for 95% of the large model's
quality on out-of-fold scores of the training part are checked on the held-out part.

    .venv/bin/python bench/cascade_mmlu_pro.py --out bench/results/cascade_mmlu_pro.json

Light on CPU: one process, sparse features, a few seconds per pair.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from cascade.calibrate import calibrate, escalations, parse_target
from cascade.evaluate import evaluate_scores, operating_point
from cascade.mmlu_pro import build_outcomes
from cascade.outcomes import OutcomeColumns
from cascade.pricing import TokenPrice

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "mmlu_pro"

# (small, large, small $/M tokens, large $/M tokens): 2024 hosted list prices, in and out equal.
PAIRS = [
    ("Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B-Instruct", "0.18", "0.88"),
    ("Qwen1.5-7B-Chat", "Qwen1.5-72B-Chat", "0.20", "0.90"),
    ("Mistral-7B-Instruct-v0.2", "Mixtral-8x7B-Instruct-v0.1", "0.20", "0.60"),
]


def _price(per_million: str) -> TokenPrice:
    return TokenPrice(
        input_per_million=Decimal(per_million), output_per_million=Decimal(per_million)
    )


def read_data(directory: Path) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    with (directory / "questions.jsonl").open() as handle:
        questions = [json.loads(line) for line in handle]
    tables = []
    for name in ("correct_matrix.csv", "output_chars_matrix.csv"):
        with (directory / name).open(newline="") as handle:
            tables.append(list(csv.DictReader(handle)))
    return questions, tables[0], tables[1]


def split(
    records: list[dict[str, Any]], test_share: float, seed: int
) -> tuple[list[int], list[int]]:
    """Per-category shuffled split, so every domain is in both parts in proportion."""
    rng = np.random.default_rng(seed)
    by_category: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        by_category[record["category"]].append(index)
    train: list[int] = []
    test: list[int] = []
    for indices in by_category.values():
        shuffled = rng.permutation(indices)
        cut = round(len(shuffled) * test_share)
        test.extend(int(i) for i in shuffled[:cut])
        train.extend(int(i) for i in shuffled[cut:])
    return sorted(train), sorted(test)


def prompt_text(question: dict[str, Any]) -> str:
    """What a user would send: the question and its options."""
    return question["text"] + "\n" + "\n".join(question.get("options") or [])


def fit_features(texts: list[str]) -> tuple[Any, Any]:
    """TF-IDF over word 1-2-grams and char 2-5-grams; returns (train matrix, transform)."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizers = [
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=60_000),
        TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True, max_features=60_000
        ),
    ]
    matrix = hstack([v.fit_transform(texts) for v in vectorizers], format="csr")

    def transform(new_texts: list[str]) -> Any:
        return hstack([v.transform(new_texts) for v in vectorizers], format="csr")

    return matrix, transform


def fit_probability(features: Any, labels: np.ndarray, seed: int) -> tuple[Any, np.ndarray]:
    """Logistic regression -> (P(label true | features), out-of-fold P on the training rows).

    Thresholds must be calibrated on scores the scorer was not trained on: in-sample scores
    are overconfident, and thresholds fitted on them escalate far too little on new queries.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    def make() -> Any:
        return LogisticRegression(C=0.5, max_iter=2000, random_state=seed)

    out_of_fold = cross_val_predict(make(), features, labels, cv=3, method="predict_proba")
    model = make().fit(features, labels)
    return (lambda x: model.predict_proba(x)[:, 1]), out_of_fold[:, 1]


def scorers(
    records: list[dict[str, Any]], texts: list[str], train: list[int], test: list[int], seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two difficulty scorers, each as (out-of-fold train scores, held-out scores); higher =
    keep the small model.

    enough: one boolean classifier, "was the small model enough?" (false only when the large
      model was right and the small one wrong): the single router the service can load.
    gain: two boolean classifiers, "was the small/large model right?"; the score is
      (1 + P(small right) - P(large right)) / 2, the expected correctness gain of keeping the
      small answer mapped to [0, 1]. It ranks by the quantity PGR rewards.
    """
    x_train, transform = fit_features([texts[i] for i in train])
    x_test = transform([texts[i] for i in test])
    small = np.array([r["small_correct"] for r in records])
    large = np.array([r["large_correct"] for r in records])
    enough, enough_oof = fit_probability(x_train, ~(large & ~small)[train], seed)
    p_small, small_oof = fit_probability(x_train, small[train], seed)
    p_large, large_oof = fit_probability(x_train, large[train], seed)
    return {
        "enough": (enough_oof, enough(x_test)),
        "gain": ((1.0 + small_oof - large_oof) / 2, (1.0 + p_small(x_test) - p_large(x_test)) / 2),
    }


def columns(records: list[dict[str, Any]], indices: list[int]) -> OutcomeColumns:
    return OutcomeColumns(
        small=[float(records[i]["small_correct"]) for i in indices],
        large=[float(records[i]["large_correct"]) for i in indices],
        small_cost=[records[i]["small_cost"] for i in indices],
        large_cost=[records[i]["large_cost"] for i in indices],
    )


def metrics(cols: OutcomeColumns, scores: np.ndarray, draws: int, seed: int) -> dict[str, Any]:
    e = evaluate_scores(
        cols.small,
        cols.large,
        scores,
        cols.small_cost,
        cols.large_cost,
        mode="route",
        random_draws=draws,
        seed=seed,
    )
    data = asdict(e)
    data.pop("curve")
    return data


def bootstrap_apgr(cols: OutcomeColumns, scores: np.ndarray, seed: int, rounds: int) -> list[float]:
    """2.5% and 97.5% percentiles of APGR over resampled held-out sets (scorer fixed)."""
    rng = np.random.default_rng(seed)
    values = []
    n = len(scores)
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        sub = cols.subset(list(idx))
        e = evaluate_scores(
            sub.small,
            sub.large,
            scores[idx],
            sub.small_cost,
            sub.large_cost,
            mode="route",
            random_draws=0,
        )
        if e.apgr is not None:
            values.append(e.apgr)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def evaluate_scorer(
    records: list[dict[str, Any]],
    train: list[int],
    test: list[int],
    scores: tuple[np.ndarray, np.ndarray],
    args: Any,
) -> dict[str, Any]:
    """Held-out metrics overall, per category and per route label, plus calibration."""
    test_cols = columns(records, test)
    result: dict[str, Any] = {
        "overall": metrics(test_cols, scores[1], args.draws, args.seed),
        "apgr_95ci": bootstrap_apgr(test_cols, scores[1], args.seed, args.bootstrap),
    }
    for key in ("category", "route"):
        groups: dict[str, list[int]] = defaultdict(list)
        for position, index in enumerate(test):
            groups[records[index][key]].append(position)
        result[f"by_{key}"] = {
            name: metrics(test_cols.subset(pos), scores[1][pos], args.draws, args.seed)
            for name, pos in sorted(groups.items())
        }
    result["calibrated_95pct"] = held_out_calibration(records, train, test, *scores)
    return result


def run_pair(data: tuple[Any, ...], pair: tuple[str, str, str, str], args: Any) -> dict[str, Any]:
    small, large, small_price, large_price = pair
    started = time.perf_counter()
    questions = {str(q["question_id"]): q for q in data[0]}
    report = build_outcomes(
        data[0],
        data[1],
        data[2],
        small=small,
        large=large,
        small_price=_price(small_price),
        large_price=_price(large_price),
    )
    records = report.records
    train, test = split(records, args.test_share, args.seed)
    texts = [prompt_text(questions[str(r["question_id"])]) for r in records]
    if args.write_splits:
        write_splits(args.write_splits, small, records, texts, train, test)
    result: dict[str, Any] = {
        "small": small,
        "large": large,
        "prices_per_million": {"small": small_price, "large": large_price},
        "records": len(records),
        "train": len(train),
        "test": len(test),
    }
    for name, scores in scorers(records, texts, train, test, args.seed).items():
        result[name] = evaluate_scorer(records, train, test, scores, args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def write_splits(
    directory: Path,
    small: str,
    records: list[dict[str, Any]],
    texts: list[str],
    train: list[int],
    test: list[int],
) -> None:
    """Outcome files for the CLI and a boolean-labelled training file for the router trainer."""
    directory.mkdir(parents=True, exist_ok=True)
    for part, indices in (("train", train), ("test", test)):
        with (directory / f"{small}.{part}.outcomes.jsonl").open("w") as handle:
            for i in indices:
                handle.write(json.dumps({**records[i], "text": texts[i]}) + "\n")
    with (directory / f"{small}.train.enough.jsonl").open("w") as handle:
        for i in train:
            enough = not (records[i]["large_correct"] and not records[i]["small_correct"])
            handle.write(json.dumps({"text": texts[i], "label": enough}) + "\n")


def held_out_calibration(
    records: list[dict[str, Any]],
    train: list[int],
    test: list[int],
    train_scores: np.ndarray,
    test_scores: np.ndarray,
) -> dict[str, Any]:
    """Per-route thresholds for quality=0.95 fitted on train; what they do on held-out data."""
    groups: dict[str, list[int]] = defaultdict(list)
    for position, index in enumerate(train):
        groups[records[index]["route"]].append(position)
    fitted = calibrate(
        columns(records, train),
        list(train_scores),
        parse_target("quality=0.95"),
        groups=dict(groups),
        mode="route",
    )
    decided = escalations(
        fitted.policy(), list(test_scores), [records[i]["route"] for i in test], mode="route"
    )
    point = operating_point(columns(records, test), decided, mode="route")
    return {
        "thresholds": {name: c.threshold for name, c in fitted.routes.items()},
        "train_expected": asdict(fitted.default),
        "held_out": asdict(point),
        "held_out_quality_vs_large": point.quality / point.quality_large,
        "held_out_savings": 1 - point.cost_per_1k / point.cost_per_1k_always_large,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="MMLU-Pro results directory.")
    parser.add_argument("--out", type=Path, help="Write the full results as JSON here.")
    parser.add_argument(
        "--test-share", type=float, default=0.3, help="Held-out share per category."
    )
    parser.add_argument("--seed", type=int, default=0, help="Split, scorer and random-policy seed.")
    parser.add_argument("--draws", type=int, default=20, help="Random policies per evaluation.")
    parser.add_argument("--bootstrap", type=int, default=200, help="Bootstrap rounds for the CI.")
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="How many pairs to run.")
    parser.add_argument(
        "--write-splits", type=Path, help="Also write train/test outcome files to this directory."
    )
    args = parser.parse_args()
    data = read_data(args.data)
    results = [run_pair(data, pair, args) for pair in PAIRS[: args.pairs]]
    for r in results:
        for name in ("enough", "gain"):
            o, ci = r[name]["overall"], r[name]["apgr_95ci"]
            held = r[name]["calibrated_95pct"]
            print(
                f"{r['small']} -> {r['large']} [{name}]: test {r['test']}, "
                f"APGR {o['apgr']:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f}), random "
                f"{o['random_apgr']:.3f}±{o['random_apgr_std']:.3f}, "
                f"oracle {o['oracle_apgr']:.3f}, "
                f"CPT50 {o['cpt_50']:.3f}, CPT80 {o['cpt_80']:.3f}, savings@95% "
                f"{o['savings_at_95pct_quality']:.3f} (random "
                f"{o['random_savings_at_95pct_quality']:.3f}); calibrated on train: held-out "
                f"quality {held['held_out_quality_vs_large']:.3f} of large, savings "
                f"{held['held_out_savings']:.3f}"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"seed": args.seed, "test_share": args.test_share, "pairs": results}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
