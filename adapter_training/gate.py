"""The gate: does an adapter beat the base model on held-out data by a margin?

Pure logic over numbers the evaluation measured (no model, no I/O), so the rule can be read
and tested on its own:

- the primary measure is the mean answer-token loss (nats); the adapter passes when its loss is
  at least ``margin`` (a fraction, default 2%) below the base model's;
- when exact match was measured too, the adapter must also not answer fewer questions right
  than the base: a lower loss with worse answers is not an improvement a user would accept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEFAULT_MARGIN", "GateVerdict", "gate_verdict"]

DEFAULT_MARGIN = 0.02


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    margin: float
    base_loss: float
    adapter_loss: float
    loss_improvement: float  # (base - adapter) / base: 0.1 = the adapter's loss is 10% lower
    base_exact_match: float | None
    adapter_exact_match: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_verdict(
    base_loss: float,
    adapter_loss: float,
    *,
    margin: float = DEFAULT_MARGIN,
    base_exact_match: float | None = None,
    adapter_exact_match: float | None = None,
) -> GateVerdict:
    """The verdict and its reason in words (see the module docstring for the rule)."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}; 0.02 means 2% lower loss")
    if base_loss <= 0:
        raise ValueError(f"base_loss must be positive, got {base_loss}")
    improvement = (base_loss - adapter_loss) / base_loss
    loss_ok = improvement >= margin
    em_known = base_exact_match is not None and adapter_exact_match is not None
    em_ok = not em_known or adapter_exact_match >= base_exact_match  # type: ignore[operator]
    words = f"loss {base_loss:.4f} -> {adapter_loss:.4f} ({improvement:+.1%}, need >= {margin:.1%})"
    if em_known:
        words += f"; exact match {base_exact_match:.3f} -> {adapter_exact_match:.3f}"
    if loss_ok and em_ok:
        reason = f"passed: {words}"
    elif not loss_ok:
        reason = f"failed: the loss is not lower by the margin: {words}"
    else:
        reason = f"failed: fewer exact matches than the base: {words}"
    return GateVerdict(
        passed=loss_ok and em_ok,
        margin=margin,
        base_loss=base_loss,
        adapter_loss=adapter_loss,
        loss_improvement=improvement,
        base_exact_match=base_exact_match,
        adapter_exact_match=adapter_exact_match,
        reason=reason,
    )
