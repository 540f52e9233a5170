"""The model card (README.md) written into every router artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from router_training.manifest import CARD, Manifest
from router_training.metric_names import QUALITY_METRICS

__all__ = ["candidate_table", "write_card"]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _model_lines(manifest: Manifest) -> list[str]:
    """Ensemble weights and the encoder's ONNX graph, when they apply."""
    params = manifest.params
    lines = []
    spec = params.get("ensemble")
    if isinstance(spec, dict):
        lines.append(
            f"- ensemble: encoder weight {spec['encoder_weight']:.2f}, {spec['member']} weight "
            f"{1 - spec['encoder_weight']:.2f} (log-probabilities; member temperatures "
            f"{spec['encoder_temperature']:.3f} / {spec['member_temperature']:.3f})"
        )
    gate = params.get("gate")
    if isinstance(gate, dict) and gate:
        lines.append(_gate_line(gate))
    if params.get("onnx_optimization") not in (None, "none"):
        lines.append(
            f"- encoder ONNX graph: {params['onnx_optimization']} "
            f"(fused operators: {params.get('onnx_fused_operators')})"
        )
    return lines


def _gate_line(gate: dict[str, Any]) -> str:
    if gate.get("threshold") is None:
        return f"- gate ({gate['target']}): off, the encoder scores every query"
    return (
        f"- gate ({gate['target']}): the TF-IDF member answers alone at calibrated probability "
        f">= {gate['threshold']:.4f}; hold-out agreement with the full ensemble "
        f"{gate['holdout_agreement']:.4f}, encoder fraction {gate['holdout_encoder_fraction']:.4f}"
    )


def candidate_table(records: list[dict[str, Any]], chosen: str) -> list[str]:
    """A Markdown table of kind auto's candidates (``auto.CandidateResult.record`` dicts)."""
    lines = [
        "| candidate | score | macro-F1 | in-scope accuracy | OOS recall | AUROC | threshold "
        "| seconds | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        if record.get("skipped"):
            lines.append(f"| {record['name']} | | | | | | | | skipped: {record['skipped']} |")
            continue
        cells = [
            _fmt(record.get(key))
            for key in (
                "score",
                "macro_f1",
                "in_scope_accuracy",
                "oos_recall",
                "auroc",
                "abstain_threshold",
            )
        ]
        marks = ["**chosen**" if record["name"] == chosen else "", record.get("note") or ""]
        mark = "; ".join(m for m in marks if m)
        lines.append(f"| {record['name']} | {' | '.join(cells)} | {record['seconds']} | {mark} |")
    return lines


def _auto_lines(params: dict[str, Any]) -> list[str]:
    auto = params.get("auto")
    if not isinstance(auto, dict):
        return []
    return [
        "## How this router was chosen (kind auto)",
        f"Selection: {auto['selection']}. Chosen: **{auto['chosen']}**: {auto['reason']}.",
        "",
        *candidate_table(auto["candidates"], auto["chosen"]),
        "",
    ]


def write_card(directory: Path, manifest: Manifest, label_counts: dict[str, int]) -> None:
    metrics = manifest.metrics
    lines = [
        f"# Spillway router `{manifest.version()}`",
        "",
        f"A {manifest.kind} query router ({manifest.runtime} runtime) that labels a user query "
        f"with one of {len(manifest.labels)} labels. Created {manifest.created_at}.",
        "",
        "## Training data",
        f"- file SHA-256: `{manifest.data_sha256}`",
        f"- source: {manifest.params.get('data', 'n/a')}",
        f"- rows used for training: {manifest.train_examples}",
        f"- validation: {manifest.validation}",
        "",
        "| label | training rows |",
        "|---|---|",
        *[f"| {label} | {count} |" for label, count in label_counts.items()],
        "",
        "## Decisions",
        f"- out-of-scope label: {_fmt(manifest.out_of_scope_label)}",
        f"- temperature (fitted on validation): {manifest.temperature:.4f}",
        f"- abstain threshold: {manifest.abstain_threshold:.4f} (target: "
        f"`{manifest.abstain_target}`); below it, or when the top label is out-of-scope, "
        "the service answers with the base model.",
        *_model_lines(manifest),
        "",
        "## Validation results",
        "| metric | value |",
        "|---|---|",
        *[f"| {key} | {_fmt(metrics.get(key))} |" for key in QUALITY_METRICS],
        "",
        *_auto_lines(manifest.params),
        "## Training parameters",
        *[f"- {key}: `{value}`" for key, value in sorted(manifest.params.items()) if key != "auto"],
        "",
        "Limitations: the router only knows the labels above; queries unlike its training data "
        "get unreliable probabilities. Re-evaluate with `spillway router eval` on your traffic.",
        "",
    ]
    (directory / CARD).write_text("\n".join(lines))
