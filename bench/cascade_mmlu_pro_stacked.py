"""Can more features lift the Llama-3.1 8B -> 70B difficulty scorer to APGR >= 0.60?

Same data, split and costs as ``bench/cascade_mmlu_pro.py`` (per-category 70/30, seed 0).
Candidate scorers, all trained on the training part only:

* ``text_enough`` / ``text_gain``: the TF-IDF + logistic-regression scorers of the main bench;
* ``stack_enough`` / ``stack_gain``: gradient-boosted trees over the text scorers' out-of-fold
  probabilities (P(enough), P(small right), P(large right)), the prompt's length, the MMLU-Pro
  category (a per-category prior) and the **small model's own output length** (recorded
  characters / 4: the one post-generation signal this data has; no token log-probabilities).
  A scorer that uses the small output runs after the small model, so it is evaluated in
  ``cascade`` cost mode (escalations pay for both); the text-only ones in ``route`` mode.

Model selection is honest: a validation split inside the training part (25%, seed 1) picks
the variant; only the chosen one (and the baseline, for comparison) is reported on the
held-out part, with the random policy and per-domain numbers from the same run.

    .venv/bin/python bench/cascade_mmlu_pro_stacked.py \
        --out bench/results/cascade_mmlu_pro_stacked.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cascade_mmlu_pro import (
    DATA,
    PAIRS,
    _price,
    fit_features,
    fit_probability,
    prompt_text,
    read_data,
    split,
)

from cascade.evaluate import evaluate_scores
from cascade.mmlu_pro import build_outcomes

POST_GENERATION = {"stack_enough", "stack_gain"}


def text_scores(texts: list[str], labels: dict[str, np.ndarray], fit: Any, apply: Any) -> Any:
    """Out-of-fold probabilities on ``fit`` and fitted-model probabilities on ``apply``."""
    x_fit, transform = fit_features([texts[i] for i in fit])
    x_apply = transform([texts[i] for i in apply])
    oof, out = [], []
    for name in ("enough", "small", "large"):
        model, fold = fit_probability(x_fit, labels[name][fit], 0)
        oof.append(fold)
        out.append(model(x_apply))
    return np.array(oof).T, np.array(out).T


def meta_features(records: list[dict[str, Any]], indices: Any, categories: list[str]) -> Any:
    rows = []
    for i in indices:
        r = records[i]
        one_hot = [float(r["category"] == c) for c in categories]
        rows.append(
            [np.log1p(r["small_completion_tokens"]), np.log1p(r["prompt_tokens"]), *one_hot]
        )
    return np.array(rows)


def boosted(features: Any, labels: np.ndarray, apply: Any) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_depth=3, learning_rate=0.05, max_iter=200, random_state=0
    )
    return model.fit(features, labels).predict_proba(apply)[:, 1]  # type: ignore[no-any-return]


def candidates(
    records: list[dict[str, Any]], texts: list[str], fit: Any, apply: Any
) -> dict[str, np.ndarray]:
    labels = {
        "small": np.array([r["small_correct"] for r in records]),
        "large": np.array([r["large_correct"] for r in records]),
    }
    labels["enough"] = ~(labels["large"] & ~labels["small"])
    oof, out = text_scores(texts, labels, fit, apply)
    categories = sorted({r["category"] for r in records})
    f_fit = np.column_stack([oof, meta_features(records, fit, categories)])
    f_apply = np.column_stack([out, meta_features(records, apply, categories)])
    p_small = boosted(f_fit, labels["small"][fit], f_apply)
    p_large = boosted(f_fit, labels["large"][fit], f_apply)
    return {
        "text_enough": out[:, 0],
        "text_gain": (1 + out[:, 1] - out[:, 2]) / 2,
        "stack_enough": boosted(f_fit, labels["enough"][fit], f_apply),
        "stack_gain": (1 + p_small - p_large) / 2,
    }


def metrics(records: list[dict[str, Any]], indices: Any, scores: Any, name: str) -> dict[str, Any]:
    e = evaluate_scores(
        [float(records[i]["small_correct"]) for i in indices],
        [float(records[i]["large_correct"]) for i in indices],
        list(scores),
        [records[i]["small_cost"] for i in indices],
        [records[i]["large_cost"] for i in indices],
        mode="cascade" if name in POST_GENERATION else "route",
        random_draws=20,
        seed=0,
    )
    data = asdict(e)
    data.pop("curve")
    return data


def by_group(
    records: list[dict[str, Any]], test: list[int], scores: Any, name: str, key: str
) -> dict[str, Any]:
    groups: dict[str, list[int]] = defaultdict(list)
    for position, index in enumerate(test):
        groups[records[index][key]].append(position)
    return {
        group: metrics(records, [test[p] for p in pos], scores[pos], name)
        for group, pos in sorted(groups.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    args = parser.parse_args()
    data = read_data(DATA)
    small, large, small_price, large_price = PAIRS[0]
    records = build_outcomes(
        data[0], data[1], data[2], small=small, large=large,
        small_price=_price(small_price), large_price=_price(large_price),
    ).records  # fmt: skip
    questions = {str(q["question_id"]): q for q in data[0]}
    texts = [prompt_text(questions[str(r["question_id"])]) for r in records]
    train, test = split(records, 0.3, 0)
    order = np.random.default_rng(1).permutation(len(train))
    cut = len(train) // 4
    validation = sorted(train[i] for i in order[:cut])
    fit = sorted(train[i] for i in order[cut:])
    on_validation = {
        name: metrics(records, validation, scores, name)["apgr"]
        for name, scores in candidates(records, texts, fit, validation).items()
    }
    chosen = max(on_validation, key=lambda name: on_validation[name])
    print(f"validation APGR: {on_validation} -> chosen {chosen}", flush=True)
    held_out = candidates(records, texts, train, test)
    result: dict[str, Any] = {"pair": [small, large], "validation_apgr": on_validation}
    result["chosen"] = chosen
    for name in sorted({chosen, "text_enough"}):
        result[name] = {
            "overall": metrics(records, test, held_out[name], name),
            "by_route": by_group(records, test, held_out[name], name, "route"),
            "by_category": by_group(records, test, held_out[name], name, "category"),
        }
        o = result[name]["overall"]
        print(
            f"held-out {name}: APGR {o['apgr']:.3f} (random {o['random_apgr']:.3f} ± "
            f"{o['random_apgr_std']:.3f}), CPT50 {o['cpt_50']:.3f}, CPT80 {o['cpt_80']:.3f}, "
            f"savings@95% {o['savings_at_95pct_quality']:.3f} "
            f"(random {o['random_savings_at_95pct_quality']:.3f})"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
