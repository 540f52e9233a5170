"""Tenants in the config: their API keys (kept as digests), limits and own adapters, and the
check that tenants' adapters exist and belong to one tenant each."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from pydantic import ConfigDict, Field, field_validator, model_validator

from orchestrator.config.base import Strict

__all__ = ["TenantSettings", "check_tenant_adapters"]


class TenantSettings(Strict):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # keys stay out

    name: str = Field(
        description="Tenant name recorded in the ledger; letters, digits, '.', '_', '-'.",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="API keys of this tenant: a literal key, or 'sha256:<hex>' of the key. "
        "Literal keys are hashed while the config is read; only digests are kept.",
    )
    api_keys_env: list[str] = Field(
        default_factory=list,
        description="Environment variables each holding one key (literal or 'sha256:<hex>'), "
        "read when the service starts, not by `spillway config check`.",
    )
    admin: bool = Field(
        False, description="Whether these keys may read every tenant's stats and the dashboard."
    )
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="Router label -> this tenant's own small-model adapter. An adapter listed "
        "here is private to this tenant; labels not listed use router.adapters.",
    )
    requests_per_minute: int | None = Field(
        None, ge=1, description="Chat requests per minute per ingress replica; null: no limit."
    )
    monthly_budget_usd: Decimal | None = Field(
        None, ge=0, description="Spend per calendar month (UTC) before 429s; null: no budget."
    )
    keep_query_text: bool = Field(
        False,
        description="Store the text the router labelled in each ledger row (query_text), so "
        "`spillway router train --from-ledger` can learn from this tenant's traffic. Off by "
        "default: the ledger then holds user prompts (up to 20,000 characters each) for as "
        "long as it keeps rows; turn it on only where that is allowed.",
    )

    @field_validator("api_keys")
    @classmethod
    def _hash_keys(cls, keys: list[str]) -> list[str]:
        return [f"sha256:{_digest_of(key)}" for key in keys]

    @field_validator("api_keys_env")
    @classmethod
    def _env_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return names

    @model_validator(mode="after")
    def _has_keys(self) -> TenantSettings:
        if not self.api_keys and not self.api_keys_env:
            raise ValueError(f"tenant {self.name!r} needs api_keys or api_keys_env")
        return self

    def key_digests(self) -> set[str]:
        """SHA-256 hex digests of the keys written in the config (not those from api_keys_env)."""
        return {_digest_of(key) for key in self.api_keys}

    def env_key_digests(self, environ: Mapping[str, str]) -> set[str]:
        """Digests of the keys in this tenant's api_keys_env variables; a missing or empty
        variable is a ValueError naming the tenant and the variable (never the value)."""
        digests = set()
        for name in self.api_keys_env:
            value = environ.get(name, "").strip()
            if not value:
                raise ValueError(
                    f"tenant {self.name!r}: environment variable {name} (api_keys_env) is not set"
                )
            digests.add(_digest_of(value))
        return digests


def _digest_of(key: str) -> str:
    if key.startswith("sha256:"):
        digest = key.removeprefix("sha256:").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError("a 'sha256:' key needs 64 hexadecimal digits after the prefix")
        return digest
    if not key.strip():
        raise ValueError("an API key must not be empty")
    return hashlib.sha256(key.encode()).hexdigest()


def check_tenant_adapters(
    tenants: Sequence[TenantSettings],
    routes: Mapping[str, str | None],
    adapters: Iterable[str],
) -> None:
    """ValueError naming the field when a tenant lists an adapter the small model lacks, two
    tenants list the same adapter, or router.adapters maps a label to a private adapter."""
    known = set(adapters)
    owner: dict[str, str] = {}
    for index, tenant in enumerate(tenants):
        for label, adapter in tenant.adapters.items():
            where = f"tenants.{index}.adapters.{label}"
            if adapter not in known:
                available = ", ".join(sorted(known)) or "none"
                raise ValueError(
                    f"{where}: adapter {adapter!r} is not one of the small model's adapters "
                    f"({available})"
                )
            if owner.get(adapter, tenant.name) != tenant.name:
                raise ValueError(
                    f"{where}: adapter {adapter!r} is already private to tenant "
                    f"{owner[adapter]!r}; an adapter belongs to one tenant at most"
                )
            owner[adapter] = tenant.name
    for route, shared in routes.items():
        if shared is not None and shared in owner:
            raise ValueError(
                f"router.adapters.{route}: adapter {shared!r} is private to tenant "
                f"{owner[shared]!r}; router.adapters may name shared adapters only (give the "
                f"tenant the label under tenants[].adapters instead)"
            )
