"""Each tenant's adapter catalog: which small-model adapters it may use, and which adapter a
router label resolves to for it. Pure logic over the config and the adapter registry's
contents; no I/O. (The config's own
validation of tenants' adapters is `orchestrator.config.settings.check_tenant_adapters`.)

An adapter that some tenant lists under `tenants[].adapters` (or that an admin added for a
tenant at run time: the adapter registry's owner) is *private* to that tenant; every other
adapter of the small model is *shared*. With the registry, each name serves one version
(`serving`: name -> `name@N`) and its other versions can be named as `name@N`.

For a router label a tenant gets its own adapter when it has one for the label, else the
shared `router.adapters[label]`, else the base model. A private adapter of another tenant is,
to everyone else, a model that does not exist: it is neither listed nor accepted, and the 404
reads as for any unknown name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.config import SpillwayConfig
from orchestrator.config.adapter_registry import AdapterRegistry, RegistryError, split_version
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
    owned: Mapping[str, frozenset[str]] = field(default_factory=dict)  # tenant -> private names
    serving: Mapping[str, str] = field(default_factory=dict)  # name -> name@N (registry)
    versions: Mapping[str, frozenset[str]] = field(default_factory=dict)  # name -> its name@N
    canaries: Mapping[str, tuple[str, float]] = field(default_factory=dict)  # name -> (v, share)

    @classmethod
    def build(
        cls,
        *,
        small: str,
        large: str,
        adapters: Iterable[str],
        routes: Mapping[str, str | None],
        tenants: Sequence[TenantSettings],
        registry: AdapterRegistry | None = None,
    ) -> AdapterCatalog:
        own = {t.name: dict(t.adapters) for t in tenants}
        owned: dict[str, set[str]] = {}
        for name, labels in own.items():
            owned.setdefault(name, set()).update(labels.values())
        names = set(adapters)
        serving: dict[str, str] = {}
        versions: dict[str, frozenset[str]] = {}
        canaries: dict[str, tuple[str, float]] = {}
        if registry is not None:
            canaries = registry.canaries()
            live = registry.live()
            names = set(live)
            for name, entry in live.items():
                if entry.owner is not None:
                    owned.setdefault(entry.owner, set()).add(name)
                serving[name] = entry.label()
                versions[name] = frozenset(entry.label(v) for v in entry.versions)
        private = {adapter for labels in owned.values() for adapter in labels}
        return cls(
            small,
            large,
            frozenset(names - private),
            dict(routes),
            own,
            {tenant: frozenset(labels) for tenant, labels in owned.items()},
            serving,
            versions,
            canaries,
        )

    @classmethod
    def from_config(
        cls, config: SpillwayConfig, registry: AdapterRegistry | None = None
    ) -> AdapterCatalog:
        """The catalog of a whole Spillway config (and of the adapter registry, if any)."""
        return cls.build(
            small=config.small.served_name,
            large=config.large.served_name,
            adapters=config.small.adapter_names(),
            routes=config.router.adapters,
            tenants=config.tenants,
            registry=registry,
        )

    def adapters_of(self, tenant: str | None) -> frozenset[str]:
        """The adapters `tenant` may name: the shared ones and its own."""
        mine = self.owned.get(tenant, frozenset()) if tenant is not None else frozenset()
        return self.shared | mine

    def may_use(self, tenant: str | None, model: str) -> bool:
        """Whether `model` (a name, or a version `name@N`) is an adapter `tenant` may use."""
        try:
            name, version = split_version(model)
        except RegistryError:
            return False
        if name not in self.adapters_of(tenant):
            return False
        return version is None or model in self.versions.get(name, frozenset())

    def version_of(self, model: str, query_id: str = "") -> str | None:
        """The `name@N` that `model` runs: as named, else the name's canary for its share of
        queries (by a stable hash of `query_id`), else its serving version; None without a
        registry."""
        if "@" in model:
            return model
        canary = self.canaries.get(model)
        if canary is not None and _unit_hash(query_id) < canary[1]:
            return canary[0]
        return self.serving.get(model)

    def adapter_for_label(self, tenant: str | None, label: str) -> str | None:
        """The tenant's own adapter for the label, else the shared one, else None (base)."""
        mine = self.own.get(tenant, {}) if tenant is not None else {}
        chosen = mine.get(label) or self.routes.get(label)
        # An adapter removed at run time: the label falls back to the base model.
        return chosen if chosen is None or chosen in self.adapters_of(tenant) else None

    def models_of(self, tenant: str | None) -> list[ModelCard]:
        """What /v1/models lists for `tenant`, in a stable order."""
        cards = [ModelCard(AUTO_MODEL, "spillway"), ModelCard(self.small, "small")]
        cards += [ModelCard(a, "adapter", self.small) for a in sorted(self.adapters_of(tenant))]
        cards.append(ModelCard(self.large, "large"))
        return cards

    def model_names(self, tenant: str | None) -> list[str]:
        return [card.name for card in self.models_of(tenant)]


def _unit_hash(key: str) -> float:
    """A stable number in [0, 1) for a key (the same query always takes the same side)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
