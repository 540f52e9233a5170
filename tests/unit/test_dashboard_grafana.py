"""serve_config/grafana-dashboard.json: valid JSON whose queries use only metrics that
orchestrator/metrics.py exposes, and labels those metrics carry."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from orchestrator.ledger import LedgerStats
from orchestrator.query.metrics import SpillwayMetrics
from tests import dashboard_sample as sample

DASHBOARD = Path(__file__).resolve().parents[2] / "serve_config" / "grafana-dashboard.json"


def exposed() -> dict[str, set[str]]:
    """Every sample name the metrics expose, with its label names."""
    metrics = SpillwayMetrics()
    for row in sample.rows(datetime(2025, 3, 1, tzinfo=UTC)):
        metrics.observe_query(row)
    metrics.observe_ledger(LedgerStats())
    body, _ = metrics.render()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            names.setdefault(s.name, set()).update(s.labels)
    return names


def test_grafana_queries_use_exposed_metrics_and_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = exposed()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    for expr in exprs:
        for metric, selector in re.findall(r"(spillway_[a-z_]+)(\{[^}]*\})?", expr):
            assert metric in names, f"{metric} is not exposed ({expr})"
            for label in re.findall(r"([a-z_]+)\s*[=!~]+", selector or ""):
                assert label in names[metric], f"{metric} has no label {label} ({expr})"
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "tenant", "route"}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
