"""The cascade policy one ingress replica decides with, replaceable while it serves.

A replacement is validated by the caller (`orchestrator.config.validate_cascade`) and then
swapped in as one reference, so a bad policy never takes effect and nothing is half-applied.
Each query takes the policy in force once, when it starts (`QueryService`), and decides its
skip, its escalation and its stream cut-off with that one policy, whatever is swapped in
while it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cascade.policy import CascadePolicy

__all__ = ["SOURCE_ADMIN_API", "SOURCE_CONFIG", "SOURCE_USER_CONFIG", "LivePolicy", "PolicyInForce"]

SOURCE_CONFIG = "config"  # the config file's `cascade` / `cascade_file`, as the replica started
SOURCE_ADMIN_API = "admin_api"  # PUT /v1/admin/cascade on this replica
SOURCE_USER_CONFIG = "user_config"  # the Ingress deployment's user_config (`cascade` key)


@dataclass(frozen=True)
class PolicyInForce:
    """A policy, where it came from, and when (Unix seconds) it replaced the previous one."""

    policy: CascadePolicy
    source: str
    applied_at: float | None
    version: int  # 1 at start, +1 for each replacement on this replica

    def describe(self) -> dict[str, Any]:
        """The admin API's view: the policy as a `cascade` section, and its provenance."""
        return {
            "object": "cascade.policy",
            "policy": self.policy.model_dump(mode="json", exclude_defaults=True),
            "source": self.source,
            "applied_at": self.applied_at,
            "version": self.version,
            "scope": "replica",
        }


class LivePolicy:
    """Holds the policy in force; `replace` swaps one reference (atomic for readers)."""

    def __init__(self, policy: CascadePolicy) -> None:
        self._current = PolicyInForce(policy, SOURCE_CONFIG, None, 1)

    @property
    def current(self) -> PolicyInForce:
        return self._current

    @property
    def policy(self) -> CascadePolicy:
        return self._current.policy

    def replace(self, policy: CascadePolicy, source: str) -> PolicyInForce:
        """Put an already validated policy in force; returns what is now in force."""
        previous = self._current
        self._current = PolicyInForce(policy, source, time.time(), previous.version + 1)
        return self._current
