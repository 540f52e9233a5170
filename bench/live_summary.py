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
    for step in ("from_ledger", "spillway"):
        if step in meta:
            m = meta[step]
            lines.append(
                f"{step}: policy {m['policy']['source']} v{m['policy']['version']}, ledger vs "
                f"responses {m.get('ledger_agreement')}"
            )
    if "model_processes" in meta:
        lines.append(f"Model processes unchanged: {meta['model_processes']['unchanged']}")
    if "learned_from_ledger" in meta:
        m = meta["learned_from_ledger"]
        lines.append(
            f"Learned signal fitted from ledger feedback: test AUROC {_num(m['auroc'])} "
            f"(best single: {m['best_single']} {_num(m['best_single_auroc'])})"
        )
    lines += streaming_lines(meta.get("streaming"))
    return "\n".join(lines)


def streaming_lines(streaming: dict[str, Any] | None) -> list[str]:
    if not streaming:
        return []
    lines = [
        "",
        f"Streaming, {streaming['questions']} questions with a reason first "
        f"(small answer tokens {streaming['small_answer_tokens']}):",
        "| policy | accuracy | escalated | median TTFT s (accepted / escalated) |",
        "|---|---|---|---|",
    ]
    for name, p in streaming["policies"].items():
        lines.append(
            f"| {name} | {_pct(p['accuracy'])} | {_pct(p['share_escalated'])} | "
            f"{_num(p['ttft_median_s'])} ({_num(p['ttft_median_accepted_s'])} / "
            f"{_num(p['ttft_median_escalated_s'])}) |"
        )
    return lines
