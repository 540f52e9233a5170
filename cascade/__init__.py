"""Pure cascade logic: confidence, policy, pricing, calibration, offline evaluation. No I/O."""

from __future__ import annotations

from cascade.confidence import LearnedSignal, Signal, compute_confidence, confidence_features
from cascade.policy import (
    REASON_CONFIDENT,
    REASON_LOW_CONFIDENCE,
    REASON_PREDICTED_HARD,
    CascadePolicy,
    Decision,
    RoutePolicy,
    decide,
    decide_before_generation,
)
from cascade.pricing import (
    GpuSecondPrice,
    QueryCost,
    TokenPrice,
    Usage,
    attempt_cost,
    query_cost,
)

__all__ = [
    "REASON_CONFIDENT",
    "REASON_LOW_CONFIDENCE",
    "REASON_PREDICTED_HARD",
    "CascadePolicy",
    "Decision",
    "GpuSecondPrice",
    "LearnedSignal",
    "QueryCost",
    "RoutePolicy",
    "Signal",
    "TokenPrice",
    "Usage",
    "attempt_cost",
    "compute_confidence",
    "confidence_features",
    "decide",
    "decide_before_generation",
    "query_cost",
]
