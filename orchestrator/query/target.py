"""Where a request goes before the cascade: through the router, to the small model (optionally
with a named adapter), or straight to the large model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Target", "TargetKind"]

TargetKind = Literal["auto", "small", "large"]


@dataclass(frozen=True)
class Target:
    """`auto`: the router picks the adapter; `small`: the small model (with `adapter` when one
    was named); `large`: the large model, with no cascade."""

    kind: TargetKind
    adapter: str | None = None
