"""The live benchmark's numbers: recorded replies -> outcomes -> one report dict (pure math is in
`cascade.live`; this module only arranges the replies and the two price tables)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.live_ask import Reply
from bench.live_questions import Question
from cascade.confidence import FEATURE_NAMES, LearnedSignal
from cascade.live import (
    LiveOutcome,
    auroc,
    bootstrap_interval,
    curve_apgr,
    curve_savings_at,
    operating_point_savings,
    replay,
    signal_metrics,
    strategy,
)
from cascade.policy import CascadePolicy

SIGNALS = (*FEATURE_NAMES, "learned")


@dataclass(frozen=True)
class Prices:
    """Cost of an attempt from its token counts: (prompt, completion) per token, per model."""

    name: str
    unit: str
    small: tuple[float, float]
    large: tuple[float, float]
    small_adapter: tuple[float, float] | None = None  # LoRA answers cost more CPU time

    def small_cost(self, reply: Reply) -> float:
        rate = self.small_adapter if reply.adapter and self.small_adapter else self.small
        return reply.prompt_tokens * rate[0] + reply.completion_tokens * rate[1]

    def large_cost(self, reply: Reply) -> float:
        return reply.prompt_tokens * self.large[0] + reply.completion_tokens * self.large[1]


def outcomes(
    test: Sequence[Question],
    small: dict[str, Reply],
    large: dict[str, Reply],
    prices: Prices,
    learned: LearnedSignal | None,
) -> list[LiveOutcome]:
    rows = []
    for q in test:
        s, la = small[q.qid], large[q.qid]
        signals = dict(s.signals)
        if learned is not None:
            signals["learned"] = learned.score_features(s.signals)
        rows.append(
            LiveOutcome(
                small_correct=s.correct,
                large_correct=la.correct,
                small_cost=prices.small_cost(s),
                large_cost=prices.large_cost(la),
                signals=signals,
                route=s.route_key,
            )
        )
    return rows


def spillway_cost(
    q: Question, live: Reply, small: dict[str, Reply], large: dict[str, Reply], prices: Prices
) -> float:
    """The live query's cost under `prices`: the attempts it made. The tokens of a wasted small
    attempt are not in an escalated response; the same question's always-small reply (greedy,
    same adapter) stands in for them."""
    if live.reason == "predicted_hard":
        return prices.large_cost(live)
    if not live.escalated:
        return prices.small_cost(live)
    return prices.small_cost(small[q.qid]) + prices.large_cost(live)


def fit_learned(calibration: Sequence[Question], small: dict[str, Reply]) -> LearnedSignal | None:
    """Logistic regression over the calibration part's signals (None with one class only)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rows = [small[q.qid] for q in calibration if q.qid in small]
    labels = [r.correct for r in rows]
    if len(set(labels)) < 2:
        return None
    x = np.array([[r.signals.get(n, 0.0) for n in FEATURE_NAMES] for r in rows])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, labels)
    return LearnedSignal(
        intercept=float(model.intercept_[0]),
        coefficients={n: float(w) for n, w in zip(FEATURE_NAMES, model.coef_[0], strict=True)},
    )


def _ci(n: int, stat: Callable[[np.ndarray], float | None]) -> list[float] | None:
    interval = bootstrap_interval(n, stat, draws=1000, seed=15)
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def price_report(
    test: Sequence[Question],
    replies: dict[str, dict[str, Reply]],
    prices: Prices,
    policies: dict[str, CascadePolicy],
    small_enough: dict[str, float],
    main_signal: str,
    learned: LearnedSignal | None,
) -> dict[str, Any]:
    """Every number of one price table: strategies, APGR, savings, AUROC, replays, per route."""
    small, large, live = replies["small"], replies["large"], replies.get("spillway", {})
    rows = outcomes(test, small, large, prices, learned)
    n = len(rows)
    sc = np.array([o.small_correct for o in rows], dtype=float)
    lc = np.array([o.large_correct for o in rows], dtype=float)
    s_cost = np.array([o.small_cost for o in rows])
    l_cost = np.array([o.large_cost for o in rows])
    report: dict[str, Any] = {"prices": prices.name, "unit": prices.unit, "queries": n}
    report["always_small"] = _strategy(sc, s_cost, n)
    report["always_large"] = _strategy(lc, l_cost, n)
    scores = {name: [o.signals.get(name, 0.0) for o in rows] for name in SIGNALS}
    report["auroc"] = {name: auroc(scores[name], sc.astype(bool).tolist()) for name in SIGNALS}
    report["signals"] = {name: signal_metrics(rows, scores[name]) for name in SIGNALS}
    main = np.array(scores[main_signal])
    report["apgr"] = report["signals"][main_signal]["apgr"]
    report["random_apgr"] = report["signals"][main_signal]["random_apgr"]
    report["apgr_ci"] = _ci(n, lambda i: curve_apgr([rows[j] for j in i], main[i]))
    report["savings_at_95pct_quality"] = report["signals"][main_signal]["savings_at_95pct_quality"]
    report["savings_at_95pct_quality_ci"] = _ci(
        n, lambda i: curve_savings_at([rows[j] for j in i], main[i])
    )
    report["replay"] = {
        name: _replayed(rows, test, policy, small_enough) for name, policy in policies.items()
    }
    for name in (k for k in replies if k.startswith("spillway")):  # each live pass
        report[name] = _live(test, replies[name], small, large, prices, lc, l_cost)
    report["per_route"] = _per_route(rows, test, live, main_signal)
    return report


def _strategy(correct: np.ndarray, cost: np.ndarray, n: int) -> dict[str, Any]:
    result = strategy(correct.astype(bool).tolist(), cost.tolist())
    return {
        "accuracy": result.accuracy,
        "accuracy_ci": _ci(n, lambda i: float(correct[i].mean())),
        "cost_per_1k": result.cost_per_1k,
    }


def _replayed(
    rows: list[LiveOutcome],
    test: Sequence[Question],
    policy: CascadePolicy,
    small_enough: dict[str, float],
) -> dict[str, Any]:
    results = [replay(o, policy, small_enough.get(q.qid)) for o, q in zip(rows, test, strict=True)]
    correct = np.array([r[0] for r in results], dtype=float)
    cost = np.array([r[1] for r in results])
    large_acc = float(np.mean([o.large_correct for o in rows]))
    large_cost = float(np.mean([o.large_cost for o in rows]))
    kept, saved = operating_point_savings(
        float(correct.mean()), float(cost.mean()), large_acc, large_cost
    )
    reasons = [r[2] for r in results]
    return {
        "accuracy": float(correct.mean()),
        "cost_per_1k": float(1000 * cost.mean()),
        "quality_vs_large": kept,
        "cost_saved_vs_large": saved,
        "share_large": float(np.mean([r != "confident" for r in reasons])),
        "share_skipped": float(np.mean([r == "predicted_hard" for r in reasons])),
    }


def _live(
    test: Sequence[Question],
    live: dict[str, Reply],
    small: dict[str, Reply],
    large: dict[str, Reply],
    prices: Prices,
    lc: np.ndarray,
    l_cost: np.ndarray,
) -> dict[str, Any]:
    replies = [live[q.qid] for q in test]
    correct = np.array([r.correct for r in replies], dtype=float)
    cost = np.array([spillway_cost(q, live[q.qid], small, large, prices) for q in test])
    n = len(replies)
    kept, saved = operating_point_savings(
        float(correct.mean()), float(cost.mean()), float(lc.mean()), float(l_cost.mean())
    )
    return {
        "accuracy": float(correct.mean()),
        "accuracy_ci": _ci(n, lambda i: float(correct[i].mean())),
        "cost_per_1k": float(1000 * cost.mean()),
        "quality_vs_large": kept,
        "quality_vs_large_ci": _ci(n, lambda i: _ratio(correct[i].mean(), lc[i].mean())),
        "cost_saved_vs_large": saved,
        "cost_saved_vs_large_ci": _ci(n, lambda i: 1 - _ratio(cost[i].mean(), l_cost[i].mean())),
        "share_escalated": float(np.mean([r.escalated for r in replies])),
        "share_skipped": float(np.mean([r.reason == "predicted_hard" for r in replies])),
    }


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def _per_route(
    rows: list[LiveOutcome], test: Sequence[Question], live: dict[str, Reply], signal: str
) -> dict[str, Any]:
    routes: dict[str, Any] = {}
    for route in sorted({o.route for o in rows}):
        idx = [i for i, o in enumerate(rows) if o.route == route]
        picked = [rows[i] for i in idx]
        small_ok = [o.small_correct for o in picked]
        entry: dict[str, Any] = {
            "queries": len(idx),
            "small_accuracy": float(np.mean(small_ok)),
            "large_accuracy": float(np.mean([o.large_correct for o in picked])),
            f"auroc_{signal}": auroc([o.signals.get(signal, 0.0) for o in picked], small_ok),
        }
        if live:
            answers = [live[test[i].qid] for i in idx]
            entry["spillway_accuracy"] = float(np.mean([r.correct for r in answers]))
            entry["share_escalated"] = float(np.mean([r.escalated for r in answers]))
        routes[route] = entry
    return routes


def learned_vs_best(
    test: list[Any], small: dict[str, Any], policy: CascadePolicy
) -> dict[str, Any]:
    """Test-part AUROC of the learned signal fitted from ledger feedback, beside each single
    signal's (for "the small answer is right")."""
    learned = policy.default.learned
    assert learned is not None
    replies = [small[q.qid] for q in test]
    right = [r.correct for r in replies]
    single = {n: auroc([r.signals.get(n, 0.0) for r in replies], right) for n in FEATURE_NAMES}
    best = max(single, key=lambda n: single[n] or 0.0)
    return {
        "auroc": auroc([learned.score_features(r.signals) for r in replies], right),
        "best_single": best,
        "best_single_auroc": single[best],
        "coefficients": learned.model_dump(mode="json"),
    }
