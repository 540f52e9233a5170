"""Pricing: Decimal money, every attempt billed, the always-large baseline beside it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cascade.pricing import (
    QUANTUM,
    GpuSecondPrice,
    QueryCost,
    TokenPrice,
    Usage,
    attempt_cost,
    query_cost,
)

SMALL = TokenPrice(input_per_million=Decimal("0.10"), output_per_million=Decimal("0.20"))
LARGE = TokenPrice(input_per_million=Decimal("0.90"), output_per_million=Decimal("2.70"))


def test_attempt_cost_exact() -> None:
    assert attempt_cost(Usage(1000, 500), SMALL) == Decimal("0.0002000000")
    assert attempt_cost(Usage(1000, 500), LARGE) == Decimal("0.0022500000")
    assert attempt_cost(Usage(0, 0), LARGE) == Decimal("0E-10")


def test_attempt_cost_is_quantised_half_even() -> None:
    price = TokenPrice(input_per_million=Decimal("0.00015"), output_per_million=Decimal(0))
    # 1 token * 0.00015 / 1e6 = 1.5e-10 -> 2e-10 (half-even rounds 1.5 up to 2)
    assert attempt_cost(Usage(1, 0), price) == Decimal("2E-10")
    # 2.5e-10 -> 2e-10
    price = TokenPrice(input_per_million=Decimal("0.00025"), output_per_million=Decimal(0))
    assert attempt_cost(Usage(1, 0), price) == Decimal("2E-10")
    assert attempt_cost(Usage(3, 7), LARGE).as_tuple().exponent == QUANTUM.as_tuple().exponent


def test_accepted_small_answer_baseline_is_estimated_at_large_prices() -> None:
    cost = query_cost(Usage(1000, 500), SMALL, None, LARGE)
    assert cost == QueryCost(
        total=Decimal("0.0002"),
        small=Decimal("0.0002"),
        large=Decimal(0),
        baseline=Decimal("0.00225"),
    )
    assert cost.saved == Decimal("0.00205")


def test_escalated_query_pays_both_and_baseline_is_the_large_attempt() -> None:
    cost = query_cost(Usage(1000, 500), SMALL, Usage(1000, 800), LARGE)
    assert cost.small == Decimal("0.0002")
    assert cost.large == Decimal("0.00306")
    assert cost.total == Decimal("0.00326")
    assert cost.baseline == Decimal("0.00306")
    assert cost.saved < 0


def test_skipped_small_and_no_attempt() -> None:
    cost = query_cost(None, SMALL, Usage(10, 10), LARGE)
    assert cost.total == cost.large == cost.baseline and cost.small == 0
    assert query_cost(None, SMALL, None, LARGE) == QueryCost(*(Decimal(0),) * 4)


def test_gpu_second_pricing() -> None:
    gpu = GpuSecondPrice(per_second=Decimal("0.0011"))
    assert attempt_cost(Usage(5, 5, gpu_seconds=Decimal("2.5")), gpu) == Decimal("0.00275")
    assert attempt_cost(Usage(5, 5, gpu_seconds=0.5), gpu) == Decimal("0.00055")
    with pytest.raises(ValueError, match="gpu_seconds"):
        attempt_cost(Usage(5, 5), gpu)
    cost = query_cost(Usage(5, 5, gpu_seconds=1), SMALL, None, gpu)
    assert cost.baseline == Decimal("0.0011")


def test_prices_validate() -> None:
    with pytest.raises(ValidationError, match="greater than or equal"):
        TokenPrice(input_per_million=Decimal(-1), output_per_million=Decimal(0))
    with pytest.raises(ValidationError, match="extra"):
        TokenPrice.model_validate({"input_per_million": 1, "output_per_million": 1, "x": 1})
    # YAML floats become the Decimal they spell, not a binary approximation.
    price = TokenPrice.model_validate({"input_per_million": 0.1, "output_per_million": 0.3})
    assert price.input_per_million == Decimal("0.1")
    for model in (TokenPrice, GpuSecondPrice):
        assert all(f.description for f in model.model_fields.values())
    with pytest.raises(ValueError, match=">= 0"):
        Usage(-1, 0)


counts = st.integers(0, 10**7)
small_usage = st.one_of(st.none(), st.builds(Usage, counts, counts))
large_usage = st.one_of(st.none(), st.builds(Usage, counts, counts))


@given(small_usage, large_usage)
def test_total_is_sum_of_attempts_and_never_negative(s: Usage | None, la: Usage | None) -> None:
    cost = query_cost(s, SMALL, la, LARGE)
    assert cost.total == cost.small + cost.large
    assert min(cost.total, cost.small, cost.large, cost.baseline) >= 0
    if la is None and s is not None:
        assert cost.baseline >= cost.total  # small is cheaper per token than large
