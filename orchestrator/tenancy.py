"""Each tenant's adapter catalog: which small-model adapters it may use, and which adapter a
router label resolves to for it. Pure logic over the config; no I/O.

An adapter that some tenant lists under `tenants[].adapters` is *private* to that tenant;
every other adapter of the small model is *shared*. For a router label a tenant gets its own
adapter when it has one for the label, else the shared `router.adapters[label]`, else the
base model. A private adapter of another tenant is, to everyone else, a model that does not
exist: it is neither listed nor accepted, and the 404 reads as for any unknown name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.protocol import AUTO_MODEL
from orchestrator.settings import TenantSettings

__all__ = ["AdapterCatalog", "ModelCard", "check_tenant_adapters"]


@dataclass(frozen=True)
class ModelCard:
    """One entry of /v1/models: served name, role (spillway/small/adapter/large), parent."""

    name: str
    role: str
    parent: str | None = None


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


@dataclass(frozen=True)
class AdapterCatalog:
    """Who may use which adapter, and label -> adapter per tenant."""

    small: str
    large: str
    shared: frozenset[str]
    routes: Mapping[str, str | None]
    own: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        small: str,
        large: str,
        adapters: Iterable[str],
        routes: Mapping[str, str | None],
        tenants: Sequence[TenantSettings],
    ) -> AdapterCatalog:
        own = {t.name: dict(t.adapters) for t in tenants}
        private = {adapter for labels in own.values() for adapter in labels.values()}
        return cls(small, large, frozenset(set(adapters) - private), dict(routes), own)

    def adapters_of(self, tenant: str | None) -> frozenset[str]:
        """The adapters `tenant` may name: the shared ones and its own."""
        mine = self.own.get(tenant, {}) if tenant is not None else {}
        return self.shared | frozenset(mine.values())

    def adapter_for_label(self, tenant: str | None, label: str) -> str | None:
        """The tenant's own adapter for the label, else the shared one, else None (base)."""
        mine = self.own.get(tenant, {}) if tenant is not None else {}
        return mine.get(label) or self.routes.get(label)

    def models_of(self, tenant: str | None) -> list[ModelCard]:
        """What /v1/models lists for `tenant`, in a stable order."""
        cards = [ModelCard(AUTO_MODEL, "spillway"), ModelCard(self.small, "small")]
        cards += [ModelCard(a, "adapter", self.small) for a in sorted(self.adapters_of(tenant))]
        cards.append(ModelCard(self.large, "large"))
        return cards

    def model_names(self, tenant: str | None) -> list[str]:
        return [card.name for card in self.models_of(tenant)]
