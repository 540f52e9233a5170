"""The live benchmark's result as a Markdown summary (what `bench/live_cascade.py` prints)."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ci(interval: list[float] | None, percent: bool = True) -> str:
    if interval is None:
        return ""
    low, high = interval
    return f" [{_pct(low)}, {_pct(high)}]" if percent else f" [{low:.3f}, {high:.3f}]"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


LIVE_PASSES = {
    "spillway_from_ledger": "Spillway live, thresholds from ledger feedback (reloaded)",
    "spillway": "Spillway live, calibrated cascade (reloaded)",
}


def strategies_table(report: dict[str, Any]) -> list[str]:
    unit = report["unit"]
    lines = [
        f"| strategy ({report['prices']}) | accuracy [95% CI] | {unit} per 1k queries | "
        "quality vs large | cost saved vs large |",
        "|---|---|---|---|---|",
    ]
    for name in ("always_small", "always_large"):
        s = report[name]
        lines.append(
            f"| {name} | {_pct(s['accuracy'])}{_ci(s['accuracy_ci'])} | {s['cost_per_1k']:.4g} "
            "| | |"
        )
    for key, label in LIVE_PASSES.items():
        if key not in report:
            continue
        s = report[key]
        lines.append(
            f"| **{label}** | {_pct(s['accuracy'])}{_ci(s['accuracy_ci'])} "
            f"| {s['cost_per_1k']:.4g} | {_pct(s['quality_vs_large'])}"
            f"{_ci(s['quality_vs_large_ci'])} | {_pct(s['cost_saved_vs_large'])}"
            f"{_ci(s['cost_saved_vs_large_ci'])} |"
        )
    for name, r in report["replay"].items():
        lines.append(
            f"| replay: {name} | {_pct(r['accuracy'])} | {r['cost_per_1k']:.4g} | "
            f"{_pct(r['quality_vs_large'])} | {_pct(r['cost_saved_vs_large'])} |"
        )
    return lines


def signals_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| signal | AUROC (small right) | APGR | random APGR | oracle APGR "
        "| saved at 95% of large |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in report["signals"].items():
        lines.append(
            f"| {name} | {_num(m['auroc'])} | {_num(m['apgr'])} | {_num(m['random_apgr'])} | "
            f"{_num(m['oracle_apgr'])} | {_pct(m['savings_at_95pct_quality'])} |"
        )
    return lines


def summary(result: dict[str, Any]) -> str:
    usd, cpu, meta = result["usd"], result["cpu_seconds"], result["meta"]
    lines = [f"# Live cascade: {usd['queries']} test questions", ""]
    lines += [*strategies_table(usd), "", *strategies_table(cpu), "", *signals_table(usd), ""]
    lines.append(
        f"Main signal {meta['signal']}: APGR {_num(usd['apgr'])}{_ci(usd['apgr_ci'], False)} "
        f"(random {_num(usd['random_apgr'])}); saved at 95% of large "
        f"{_pct(usd['savings_at_95pct_quality'])}{_ci(usd['savings_at_95pct_quality_ci'])}"
    )
    lines += ["", "| route | queries | small acc | large acc | Spillway acc | escalated |"]
    lines.append("|---|---|---|---|---|---|")
    for route, r in usd["per_route"].items():
        lines.append(
            f"| {route} | {r['queries']} | {_pct(r['small_accuracy'])} | "
            f"{_pct(r['large_accuracy'])} | {_pct(r.get('spillway_accuracy'))} | "
            f"{_pct(r.get('share_escalated'))} |"
        )
    if "ledger_agreement" in meta:
        lines += ["", f"Ledger vs responses: {meta['ledger_agreement']}"]
    return "\n".join(lines)
