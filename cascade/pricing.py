"""What a query cost: every attempt billed, and what always-large would have cost beside it.

Money is ``decimal.Decimal`` in USD. Every attempt's cost is quantised to ``QUANTUM``
(1e-10 USD, half-even rounding) and totals are exact sums of those quantised parts, so the
ledger's columns always add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "QUANTUM",
    "GpuSecondPrice",
    "Price",
    "QueryCost",
    "TokenPrice",
    "Usage",
    "attempt_cost",
    "query_cost",
]

QUANTUM = Decimal("1e-10")
"""Smallest amount of money represented: 1e-10 USD (a ten-thousandth of a micro-dollar)."""

_MILLION = Decimal(1_000_000)


class TokenPrice(BaseModel):
    """Per-token prices of one deployment, in USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: Decimal = Field(ge=0, description="USD per million prompt tokens.")
    output_per_million: Decimal = Field(ge=0, description="USD per million completion tokens.")


class GpuSecondPrice(BaseModel):
    """Price of a deployment billed by accelerator time (e.g. a dedicated GPU replica)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: Decimal = Field(ge=0, description="USD per GPU-second of the attempt.")


Price = TokenPrice | GpuSecondPrice


@dataclass(frozen=True)
class Usage:
    """What one attempt consumed. ``gpu_seconds`` is needed only for GPU-second pricing."""

    prompt_tokens: int
    completion_tokens: int
    gpu_seconds: Decimal | float | None = None

    def __post_init__(self) -> None:
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise ValueError(f"token counts must be >= 0, got {self}")
        if self.gpu_seconds is not None and self.gpu_seconds < 0:
            raise ValueError(f"gpu_seconds must be >= 0, got {self.gpu_seconds}")


@dataclass(frozen=True)
class QueryCost:
    """Cost of one query (USD). ``total = small + large``; ``baseline`` is always-large."""

    total: Decimal
    small: Decimal
    large: Decimal
    baseline: Decimal

    @property
    def saved(self) -> Decimal:
        """Baseline minus total: negative when escalation paid for both models."""
        return self.baseline - self.total


def _quantise(amount: Decimal) -> Decimal:
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def attempt_cost(usage: Usage, price: Price) -> Decimal:
    """Cost of one attempt, quantised to ``QUANTUM``."""
    if isinstance(price, GpuSecondPrice):
        if usage.gpu_seconds is None:
            raise ValueError("GPU-second pricing needs Usage.gpu_seconds for the attempt")
        return _quantise(Decimal(str(usage.gpu_seconds)) * price.per_second)
    amount = (
        usage.prompt_tokens * price.input_per_million
        + usage.completion_tokens * price.output_per_million
    ) / _MILLION
    return _quantise(amount)


def query_cost(
    small_usage: Usage | None,
    small_price: Price,
    large_usage: Usage | None,
    large_price: Price,
) -> QueryCost:
    """Bill every attempt that ran, and estimate the always-large baseline.

    The baseline is the large attempt's own cost when the large model ran. When it did not
    (the small answer was accepted), it is estimated by pricing the small attempt's usage --
    the same prompt and the same number of completion tokens (and, for GPU-second pricing,
    the same seconds) -- at the large model's prices. That assumes the large model would have
    written an answer of the same length, which is the best estimate available without
    running it. With no attempt at all (a query that failed before any model ran) every
    amount is zero.
    """
    small = attempt_cost(small_usage, small_price) if small_usage is not None else Decimal(0)
    large = attempt_cost(large_usage, large_price) if large_usage is not None else Decimal(0)
    if large_usage is not None:
        baseline = large
    elif small_usage is not None:
        baseline = attempt_cost(small_usage, large_price)
    else:
        baseline = Decimal(0)
    return QueryCost(
        total=_quantise(small + large),
        small=_quantise(small),
        large=_quantise(large),
        baseline=_quantise(baseline),
    )
