"""Prometheus metrics over the sample ledger rows (values computed by hand from its table)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.ledger import LedgerStats
from orchestrator.query import metrics
from orchestrator.query.metrics import SpillwayMetrics
from tests import dashboard_sample as sample

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(m: SpillwayMetrics) -> Samples:
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def total(values: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and wanted <= ls)


@pytest.fixture()
def observed() -> Samples:
    m = SpillwayMetrics()
    for row in sample.rows(datetime(2025, 3, 1, tzinfo=UTC)):
        m.observe_query(row)
    m.observe_ledger(
        LedgerStats(rows_written=10, write_failures=2, queued=3, database_available=False)
    )
    return samples(m)


def test_requests_by_route_adapter_model_status(observed: Samples) -> None:
    assert total(observed, "spillway_requests_total") == 10
    assert total(observed, "spillway_requests_total", status="error", code="503") == 1
    assert total(observed, "spillway_requests_total", route="math", model="large-model") == 3
    assert total(observed, "spillway_requests_total", route="code", adapter="") == 1  # abstained
    assert total(observed, "spillway_requests_total", tenant="beta") == 4


def test_escalations_cost_and_tokens(observed: Samples) -> None:
    assert total(observed, "spillway_escalations_total", reason="low_confidence") == 3
    assert total(observed, "spillway_escalations_total", route="math", reason="predicted_hard") == 1
    assert total(observed, "spillway_cost_usd_total", tier="small") == pytest.approx(0.012)
    assert total(observed, "spillway_cost_usd_total", tier="large") == pytest.approx(0.115)
    assert total(observed, "spillway_baseline_cost_usd_total") == pytest.approx(0.186)
    assert total(observed, "spillway_tokens_total", tier="small", kind="prompt") == 700
    assert total(observed, "spillway_tokens_total", tier="large", kind="completion") == 250


def test_histograms(observed: Samples) -> None:
    assert total(observed, "spillway_stage_latency_seconds_count", stage="total") == 10
    assert total(observed, "spillway_stage_latency_seconds_sum", stage="large") == pytest.approx(
        4.35
    )
    assert total(observed, "spillway_stage_latency_seconds_bucket", stage="router", le="0.005") == 6
    assert total(observed, "spillway_answer_confidence_count", route="math") == 4  # not q-b4
    assert total(observed, "spillway_answer_confidence_bucket", route="math", le="0.6") == 2
    assert total(observed, "spillway_router_probability_count", label="code") == 3


def test_ledger_stats(observed: Samples) -> None:
    assert total(observed, "spillway_ledger_write_failures_total") == 2
    assert total(observed, "spillway_ledger_rows_written_total") == 10
    assert total(observed, "spillway_ledger_queued") == 3
    assert total(observed, "spillway_ledger_database_available") == 0


def test_module_functions_share_one_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_default", None)
    metrics.observe_query(sample.rows(datetime(2025, 3, 1, tzinfo=UTC))[0])
    metrics.observe_ledger(LedgerStats())
    body, _ = metrics.render_metrics()
    assert b'spillway_requests_total{adapter="math",code="200"' in body
    assert b"spillway_ledger_write_failures_total 0.0" in body


def test_repeated_label_values_keep_counting() -> None:
    """The labelled children are remembered between queries: the same rows observed twice
    count twice, and a query with new label values still gets its own series."""
    m = SpillwayMetrics()
    rows = sample.rows(datetime(2025, 3, 1, tzinfo=UTC))
    for row in rows + rows:
        m.observe_query(row)
    twice = samples(m)
    assert total(twice, "spillway_requests_total") == 20
    assert total(twice, "spillway_requests_total", route="math", model="large-model") == 6
    assert total(twice, "spillway_cost_usd_total", tier="large") == pytest.approx(0.230)
    assert total(twice, "spillway_stage_latency_seconds_count", stage="total") == 20
    m.observe_query(rows[0].model_copy(update={"tenant": "gamma"}))
    assert total(samples(m), "spillway_requests_total", tenant="gamma") == 1
