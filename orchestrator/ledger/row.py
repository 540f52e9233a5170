"""The ledger row: one per query, answered or failed, built by the service.

Money is `Decimal`, quantized to `MONEY_PLACES` decimal places (the database column is
NUMERIC(20, 10)); times are timezone-aware UTC. Strings are cleaned of what PostgreSQL refuses
(NUL characters, lone surrogates), so a row that validates is a row the database accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

MONEY_PLACES = 10
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
# NUMERIC(20, 10) holds 10 digits before the point.
MONEY_LIMIT = Decimal(10) ** 10
ERROR_MESSAGE_MAX_CHARS = 4000
QUERY_TEXT_MAX_CHARS = 20_000  # the router reads far less; a cap keeps rows bounded


def quantize_money(value: Decimal) -> Decimal:
    """Round to the ledger's precision (1e-10 USD, banker's rounding)."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def clean_text(value: str) -> str:
    """Replace NUL and unencodable surrogates, which PostgreSQL and UTF-8 files refuse."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


Money = Annotated[Decimal, Field(ge=0, lt=MONEY_LIMIT), AfterValidator(quantize_money)]
Tokens = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Millis = Annotated[float, Field(ge=0.0)]


class LedgerRow(BaseModel):
    """What one query cost and why. Field order is the column order of table `ledger`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query_id: str = Field(min_length=1, max_length=200)
    created_at: datetime = Field(description="When the query arrived; timezone-aware.")
    tenant: str = Field(min_length=1)
    status: Literal["ok", "error"]
    http_status: int = Field(ge=100, le=599)
    error_type: str | None = None
    error_message: str | None = None
    model_requested: str
    stream: bool = False
    route: str | None = None
    route_probability: Probability | None = None
    router_version: str | None = None
    adapter: str | None = None
    answered_by: str | None = Field(None, description="Served name of the answering model.")
    confidence: Probability | None = None
    confidence_signal: str | None = None
    threshold: float | None = None
    escalated: bool = False
    escalation_reason: str | None = None
    small_prompt_tokens: Tokens = 0
    small_completion_tokens: Tokens = 0
    large_prompt_tokens: Tokens = 0
    large_completion_tokens: Tokens = 0
    cost_small_usd: Money = Decimal(0)
    cost_large_usd: Money = Decimal(0)
    cost_usd: Money = Decimal(0)
    baseline_cost_usd: Money = Decimal(0)
    latency_router_ms: Millis | None = None
    latency_small_ms: Millis | None = None
    latency_large_ms: Millis | None = None
    latency_total_ms: Millis | None = None
    degraded: bool = Field(
        False, description="The low-confidence small answer was returned: the large model failed."
    )
    faults: str | None = Field(
        None,
        description="Deployments that failed while answering, comma-separated in order "
        "(router, small, large); None when none did.",
    )
    query_text: str | None = Field(
        None,
        max_length=QUERY_TEXT_MAX_CHARS,
        description="The text the router labelled, only for tenants with keep_query_text "
        "(router training from the ledger); None otherwise.",
    )
    adapter_version: str | None = Field(
        None,
        max_length=200,
        description="The adapter version the small model ran, `name@N` (the registry's); "
        "None when no adapter was used.",
    )

    signals: dict[str, float] | None = Field(
        None,
        description="Every confidence signal of the small answer (the response's "
        "`spillway.signals`), stored as a JSON object; None when no small answer was scored.",
    )

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("created_at must be timezone-aware; use datetime.now(timezone.utc)")
        return value.astimezone(UTC)

    @field_validator("*", mode="after")
    @classmethod
    def _clean_strings(cls, value: Any) -> Any:
        return clean_text(value) if isinstance(value, str) else value

    @field_validator("error_message", mode="after")
    @classmethod
    def _short_message(cls, value: str | None) -> str | None:
        if value is not None and len(value) > ERROR_MESSAGE_MAX_CHARS:
            return value[: ERROR_MESSAGE_MAX_CHARS - 1] + "…"
        return value


FIELDS: tuple[str, ...] = tuple(LedgerRow.model_fields)
MONEY_FIELDS: tuple[str, ...] = (
    "cost_small_usd",
    "cost_large_usd",
    "cost_usd",
    "baseline_cost_usd",
)
