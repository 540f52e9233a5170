"""Each tenant's adapter catalog: which small-model adapters it may use, and which adapter a
router label resolves to for it. Pure logic over the config; no I/O. (The config's own
validation of tenants' adapters is `orchestrator.config.settings.check_tenant_adapters`.)

An adapter that some tenant lists under `tenants[].adapters` is *private* to that tenant;
every other adapter of the small model is *shared*. For a router label a tenant gets its own
adapter when it has one for the label, else the shared `router.adapters[label]`, else the
base model. A private adapter of another tenant is, to everyone else, a model that does not
exist: it is neither listed nor accepted, and the 404 reads as for any unknown name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.config import SpillwayConfig
from orchestrator.config.tenants import TenantSettings
from orchestrator.query.request import AUTO_MODEL

__all__ = ["AdapterCatalog", "ModelCard"]


@dataclass(frozen=True)
class ModelCard:
    """One entry of /v1/models: served name, role (spillway/small/adapter/large), parent."""

    name: str
    role: str
    parent: str | None = None


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

    @classmethod
    def from_config(cls, config: SpillwayConfig) -> AdapterCatalog:
        """The catalog of a whole Spillway config."""
        return cls.build(
            small=config.small.served_name,
            large=config.large.served_name,
            adapters=config.small.adapter_names(),
            routes=config.router.adapters,
            tenants=config.tenants,
        )

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
