"""The adapter registry: the small model's LoRA adapters by name and version (`legal@3`), which
version each name serves, the version it served before (for rollback), and who owns it.

It is run-time state, changed while the service runs (`spillway adapters add|promote|...`,
the admin API), so it lives in the state directory, not in the YAML config:
`<state_dir>/adapter-registry.json`, with each added version's files copied under
`<state_dir>/adapters/<name>/<version>/` (the registry stays valid when the training output is
deleted). Why a file and not the ledger database: the small-model replicas read it on their
request path and must work while the database is down (the ledger spools through outages); a
stat() per request tells them when it changed. Writers hold an exclusive `flock` and replace
the file atomically, so readers see the old or the new registry, never half of one. On more
than one machine the state directory must be shared storage (docs/models.md).

The config's `small.engine.adapters` are version 1 of their names (owner: the tenant that lists
the adapter under `tenants[].adapters`, else shared); the file records what changed since.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.config.loader import SpillwayConfig

__all__ = [
    "REGISTRY_FILE",
    "AdapterEntry",
    "AdapterRegistry",
    "AdapterVersion",
    "RegistryError",
    "RegistryFile",
    "adapter_registry_of",
    "add_adapter",
    "check_adapter_dir",
    "split_version",
]

REGISTRY_FILE = "adapter-registry.json"
VERSIONS_DIR = "adapters"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(ValueError):
    """A change the registry refuses; the message says why and what to do instead."""


def split_version(model: str) -> tuple[str, int | None]:
    """`legal@3` -> ("legal", 3); `legal` -> ("legal", None); a bad suffix is an error."""
    name, at, version = model.partition("@")
    if not at:
        return model, None
    if not version.isdigit() or int(version) < 1:
        raise RegistryError(f"{model!r}: write a version as name@N with N >= 1, e.g. legal@2")
    return name, int(version)


class AdapterVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="1 for the config's adapter; then 2, 3, ...")
    path: str = Field(description="The PEFT adapter directory this version loads.")
    added_at: str = Field(description="When it was added (UTC, ISO 8601).")
    source: str = Field("added", description="'config' (from the YAML) or 'added' (run time).")


class AdapterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    owner: str | None = Field(None, description="Tenant that owns it; None: shared.")
    versions: dict[int, AdapterVersion] = Field(default_factory=dict)
    serving: int = Field(description="The version requests for `name` get.")
    history: list[int] = Field(default_factory=list, description="Earlier serving versions.")
    removed: bool = Field(False, description="Removed: the name no longer exists.")
    canary: int | None = Field(None, description="A version that gets a share of the traffic.")
    canary_share: float = Field(0.0, ge=0, le=1, description="Its share of `name`'s requests.")

    def label(self, version: int | None = None) -> str:
        return f"{self.name}@{self.serving if version is None else version}"


class AdapterRegistry(BaseModel):
    """Every adapter name, including removed config adapters (so they stay removed)."""

    model_config = ConfigDict(extra="forbid")

    revision: int = 0
    adapters: dict[str, AdapterEntry] = Field(default_factory=dict)

    def live(self) -> dict[str, AdapterEntry]:
        return {name: e for name, e in self.adapters.items() if not e.removed}

    def entry(self, name: str) -> AdapterEntry:
        found = self.adapters.get(name)
        if found is None or found.removed:
            known = ", ".join(sorted(self.live())) or "none"
            raise RegistryError(f"no adapter named {name!r}; known: {known}")
        return found

    def resolve(self, model: str) -> tuple[AdapterEntry, int]:
        """(entry, version) that `name` (its serving version) or `name@N` means."""
        name, version = split_version(model)
        entry = self.entry(name)
        if version is None:
            return entry, entry.serving
        if version not in entry.versions:
            have = ", ".join(entry.label(v) for v in sorted(entry.versions))
            raise RegistryError(f"{name!r} has no version {version}; it has {have}")
        return entry, version

    def paths(self) -> dict[str, str]:
        """`name@N` -> directory, for every version of every live adapter."""
        return {
            e.label(v): info.path for e in self.live().values() for v, info in e.versions.items()
        }

    def serving(self) -> dict[str, str]:
        """name -> `name@N` it serves."""
        return {name: e.label() for name, e in self.live().items()}

    def listing(self) -> list[dict[str, object]]:
        """Every live adapter: name, owner, the version it serves, its versions, history."""
        return [
            {
                "name": name,
                "owner": entry.owner,
                "serving": entry.label(),
                "versions": [
                    {"version": entry.label(v), **info.model_dump(exclude={"version"})}
                    for v, info in sorted(entry.versions.items())
                ],
                "history": [entry.label(v) for v in entry.history],
                "canary": entry.label(entry.canary) if entry.canary is not None else None,
                "canary_share": entry.canary_share,
            }
            for name, entry in sorted(self.live().items())
        ]

    def owners(self) -> dict[str, str | None]:
        return {name: e.owner for name, e in self.live().items()}

    # -- changes (pure: the caller saves) --------------------------------------------------------
    def add(self, name: str, path: str, owner: str | None, *, promote: bool) -> int:
        """A new version of `name` (a new name starts serving at once); returns the version."""
        if not NAME_PATTERN.match(name):
            raise RegistryError(
                f"adapter name {name!r}: use letters, digits, '.', '_', '-' (at most 64), "
                "no '@' (versions are numbered by the registry)"
            )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        entry = self.adapters.get(name)
        if entry is None or entry.removed:
            version = 1 + max(entry.versions, default=0) if entry else 1
            info = AdapterVersion(version=version, path=path, added_at=now)
            self.adapters[name] = AdapterEntry(
                name=name, owner=owner, versions={version: info}, serving=version
            )
            return version
        if entry.owner != owner:
            who = f"tenant {entry.owner!r}" if entry.owner else "everyone (shared)"
            raise RegistryError(
                f"adapter {name!r} belongs to {who}; add the version with that owner, or "
                "use another name"
            )
        version = 1 + max(entry.versions)
        entry.versions[version] = AdapterVersion(version=version, path=path, added_at=now)
        if promote:
            self.promote(name, version)
        return version

    def promote(self, name: str, version: int) -> None:
        entry, version = self.resolve(f"{name}@{version}")
        if entry.canary == version:  # the canary earned its place
            entry.canary, entry.canary_share = None, 0.0
        if version == entry.serving:
            return
        entry.history.append(entry.serving)
        entry.serving = version

    def set_canary(self, name: str, version: int, share: float) -> None:
        """Send `share` (0..1) of the requests for `name` to `version`; share 0 stops it."""
        entry, version = self.resolve(f"{name}@{version}")
        if not 0 <= share <= 1:
            raise RegistryError(f"canary share {share}: use a fraction from 0 to 1, e.g. 0.1")
        if share > 0 and version == entry.serving:
            raise RegistryError(f"{name}@{version} is already served to every request")
        entry.canary, entry.canary_share = (version, share) if share > 0 else (None, 0.0)

    def canaries(self) -> dict[str, tuple[str, float]]:
        """name -> (`name@N`, share) for the names with a canary."""
        return {
            name: (e.label(e.canary), e.canary_share)
            for name, e in self.live().items()
            if e.canary is not None and e.canary in e.versions
        }

    def rollback(self, name: str) -> int:
        """Serve the version served before the last promote; returns it."""
        entry = self.entry(name)
        while entry.history:
            previous = entry.history.pop()
            if previous in entry.versions:
                entry.serving = previous
                return previous
        raise RegistryError(f"{name!r} has no earlier version to roll back to")

    def remove(self, model: str) -> list[str]:
        """Remove `name` (every version) or one version `name@N` that it does not serve;
        returns the `name@N` labels removed."""
        name, version = split_version(model)
        entry = self.entry(name)
        if version is None:
            entry.removed = True
            return [entry.label(v) for v in sorted(entry.versions)]
        self.resolve(model)
        if version == entry.serving:
            raise RegistryError(
                f"{model} is the version {name!r} serves; promote or roll back to another "
                f"first, or remove the whole name with `{name}`"
            )
        del entry.versions[version]
        if entry.canary == version:
            entry.canary, entry.canary_share = None, 0.0
        entry.history = [v for v in entry.history if v != version]
        return [f"{name}@{version}"]


def _with_config(
    registry: AdapterRegistry, config_adapters: Mapping[str, str], owners: Mapping[str, str]
) -> AdapterRegistry:
    """The config's adapters as version 1 of their names, under what the file recorded."""
    for name, path in config_adapters.items():
        entry = registry.adapters.get(name)
        v1 = AdapterVersion(version=1, path=path, added_at="config", source="config")
        if entry is None:
            registry.adapters[name] = AdapterEntry(
                name=name, owner=owners.get(name), versions={1: v1}, serving=1
            )
        elif 1 in entry.versions and entry.versions[1].source == "config":
            entry.versions[1] = v1  # the config may have moved the directory
    return registry


class RegistryFile:
    """The registry in `<state_dir>/adapter-registry.json`: load, change under a lock, and tell
    cheaply (one stat) whether another process changed it."""

    def __init__(
        self,
        state_dir: str | Path,
        config_adapters: Mapping[str, str] | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / REGISTRY_FILE
        self._config_adapters = dict(config_adapters or {})
        self._owners = dict(owners or {})
        self._loaded = False
        self._seen: tuple[int, int] | None = None  # the file's (inode, mtime) at the last load

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def changed(self) -> bool:
        """Whether the file differs from what `load` last read (True before the first load)."""
        return not self._loaded or self._stamp() != self._seen

    def load(self) -> AdapterRegistry:
        stamp = self._stamp()
        registry = AdapterRegistry()
        if stamp is not None:
            registry = AdapterRegistry.model_validate_json(self.path.read_bytes())
        self._loaded, self._seen = True, stamp
        return _with_config(registry, self._config_adapters, self._owners)

    @contextmanager
    def change(self) -> Iterator[AdapterRegistry]:
        """The registry to change in place; saved atomically when the block ends normally."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / f"{REGISTRY_FILE}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            registry = self.load()
            yield registry
            registry.revision += 1
            temporary = self.path.with_suffix(f".tmp-{os.getpid()}")
            temporary.write_text(registry.model_dump_json(indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, self.path)

    def store_version(self, name: str, version: int, source: str | Path) -> str:
        """Copy an adapter directory to `<state_dir>/adapters/<name>/<version>`; its path."""
        target = self.state_dir / VERSIONS_DIR / name / str(version)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        return str(target.resolve())


def check_adapter_dir(path: str | Path, max_rank: int | None = None) -> None:
    """RegistryError unless `path` is a PEFT LoRA directory of rank <= `max_rank`."""
    config_file = Path(path) / "adapter_config.json"
    if not config_file.is_file():
        raise RegistryError(f"{config_file} not found: pass a PEFT adapter directory")
    if not (Path(path) / "adapter_model.safetensors").is_file():
        raise RegistryError(f"{path} has no adapter_model.safetensors: save with PEFT")
    rank = json.loads(config_file.read_text(encoding="utf-8")).get("r", 0)
    if max_rank is not None and rank > max_rank:
        raise RegistryError(
            f"{path} has LoRA rank {rank}, above the small model's max_lora_rank {max_rank}: "
            "train with a lower --rank or raise max_lora_rank (a restart)"
        )


def add_adapter(
    registry_file: RegistryFile,
    name: str,
    source: str | Path,
    *,
    owner: str | None = None,
    promote: bool = False,
    max_rank: int | None = None,
) -> str:
    """Check, copy and register a new version of `name`; returns its `name@N`."""
    check_adapter_dir(source, max_rank)
    with registry_file.change() as registry:
        version = registry.add(name, "", owner, promote=promote)
        path = registry_file.store_version(name, version, source)
        registry.adapters[name].versions[version].path = path
    return f"{name}@{version}"


def adapter_registry_of(config: SpillwayConfig) -> RegistryFile | None:
    """The adapter registry of a config whose small model runs in a vLLM engine (a remote small
    model manages its adapters itself), seeded with the config's adapters and their owners."""
    engine = config.small.engine
    if engine is None:
        return None
    owners = {a: t.name for t in config.tenants for a in t.adapters.values()}
    return RegistryFile(config.server.state_dir, engine.adapters, owners)
