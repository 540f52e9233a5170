"""The adapter registry (versions, promote, rollback, remove, owners, the file) and the tenant
catalog over it. Pure and fast: PEFT-shaped directories with fake weights, no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.config.adapter_registry import (
    AdapterRegistry,
    RegistryError,
    RegistryFile,
    add_adapter,
    split_version,
)
from orchestrator.config.tenants import TenantSettings
from orchestrator.query.tenancy import AdapterCatalog


def _adapter_dir(root: Path, name: str, rank: int = 8) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": rank}), encoding="utf-8")
    (path / "adapter_model.safetensors").write_bytes(b"weights of " + name.encode())
    return path


@pytest.fixture
def registry_file(tmp_path: Path) -> RegistryFile:
    legal = _adapter_dir(tmp_path / "config", "legal")
    return RegistryFile(tmp_path / "state", {"legal": str(legal)})


def test_config_adapters_are_version_one(registry_file: RegistryFile) -> None:
    registry = registry_file.load()
    assert registry.serving() == {"legal": "legal@1"}
    assert registry.resolve("legal")[1] == 1
    assert registry.adapters["legal"].versions[1].source == "config"


def test_add_promote_rollback_through_the_file(registry_file: RegistryFile, tmp_path: Path) -> None:
    v2 = add_adapter(registry_file, "legal", _adapter_dir(tmp_path, "v2"), max_rank=8)
    assert v2 == "legal@2"
    assert registry_file.load().serving() == {"legal": "legal@1"}  # added, not yet promoted
    with registry_file.change() as registry:
        registry.promote("legal", 2)
    assert registry_file.load().serving() == {"legal": "legal@2"}
    v3 = add_adapter(registry_file, "legal", _adapter_dir(tmp_path, "v3"), promote=True)
    assert v3 == "legal@3" and registry_file.load().serving()["legal"] == "legal@3"
    with registry_file.change() as registry:
        assert registry.rollback("legal") == 2
    with registry_file.change() as registry:
        assert registry.rollback("legal") == 1
        with pytest.raises(RegistryError, match="no earlier version"):
            registry.rollback("legal")


def test_added_versions_are_copied_into_the_state_dir(
    registry_file: RegistryFile, tmp_path: Path
) -> None:
    source = _adapter_dir(tmp_path, "v2")
    add_adapter(registry_file, "legal", source)
    path = Path(registry_file.load().paths()["legal@2"])
    assert path.is_relative_to(tmp_path / "state")
    assert (path / "adapter_model.safetensors").read_bytes() == b"weights of v2"


def test_changed_is_seen_by_another_reader(registry_file: RegistryFile, tmp_path: Path) -> None:
    reader = RegistryFile(registry_file.state_dir, {"legal": "/x"})
    reader.load()
    assert not reader.changed()
    add_adapter(registry_file, "medical", _adapter_dir(tmp_path, "med"))
    assert reader.changed()
    assert set(reader.load().serving()) == {"legal", "medical"}
    assert not reader.changed()


def test_refusals_say_what_to_do(registry_file: RegistryFile, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="max_lora_rank 8"):
        add_adapter(registry_file, "big", _adapter_dir(tmp_path, "big", rank=16), max_rank=8)
    with pytest.raises(RegistryError, match=r"adapter_config\.json not found"):
        add_adapter(registry_file, "none", tmp_path / "missing")
    with pytest.raises(RegistryError, match="no '@'"):
        add_adapter(registry_file, "legal@9", _adapter_dir(tmp_path, "at"))
    with registry_file.change() as registry:
        with pytest.raises(RegistryError, match="is the version 'legal' serves"):
            registry.remove("legal@1")
        with pytest.raises(RegistryError, match="has no version 7"):
            registry.promote("legal", 7)
        with pytest.raises(RegistryError, match="no adapter named 'nope'"):
            registry.rollback("nope")
    with pytest.raises(RegistryError, match="name@N"):
        split_version("legal@x")


def test_remove_a_version_and_a_name(registry_file: RegistryFile, tmp_path: Path) -> None:
    add_adapter(registry_file, "legal", _adapter_dir(tmp_path, "v2"))
    with registry_file.change() as registry:
        assert registry.remove("legal@2") == ["legal@2"]
    assert "legal@2" not in registry_file.load().paths()
    with registry_file.change() as registry:
        assert registry.remove("legal") == ["legal@1"]
    assert registry_file.load().serving() == {}  # a removed config adapter stays removed
    again = add_adapter(registry_file, "legal", _adapter_dir(tmp_path, "v3"))
    assert again == "legal@2"  # numbers are never reused: v2 was removed, v1 still recorded


def test_owner_is_kept_per_name(registry_file: RegistryFile, tmp_path: Path) -> None:
    add_adapter(registry_file, "acme-legal", _adapter_dir(tmp_path, "a"), owner="acme")
    with pytest.raises(RegistryError, match="belongs to tenant 'acme'"):
        add_adapter(registry_file, "acme-legal", _adapter_dir(tmp_path, "b"), owner="other")
    with pytest.raises(RegistryError, match="belongs to everyone"):
        add_adapter(registry_file, "legal", _adapter_dir(tmp_path, "c"), owner="acme")


def _catalog(registry: AdapterRegistry) -> AdapterCatalog:
    tenants = [
        TenantSettings(name="acme", api_keys=["k1"]),
        TenantSettings(name="globex", api_keys=["k2"]),
    ]
    return AdapterCatalog.build(
        small="small",
        large="large",
        adapters=["legal"],
        routes={"legal": "legal"},
        tenants=tenants,
        registry=registry,
    )


def test_catalog_private_versions_reach_their_tenant_only(
    registry_file: RegistryFile, tmp_path: Path
) -> None:
    add_adapter(registry_file, "acme-legal", _adapter_dir(tmp_path, "a"), owner="acme")
    add_adapter(registry_file, "acme-legal", _adapter_dir(tmp_path, "b"), owner="acme")
    add_adapter(registry_file, "legal", _adapter_dir(tmp_path, "c"))
    catalog = _catalog(registry_file.load())
    assert catalog.may_use("acme", "acme-legal") and catalog.may_use("acme", "acme-legal@2")
    assert not catalog.may_use("globex", "acme-legal")
    assert not catalog.may_use("globex", "acme-legal@2")
    assert catalog.may_use("globex", "legal@2") and not catalog.may_use("globex", "legal@3")
    assert not catalog.may_use("acme", "legal@x")
    assert "acme-legal" not in catalog.model_names("globex")
    assert catalog.version_of("legal") == "legal@1" and catalog.version_of("legal@2") == "legal@2"


def test_label_of_a_removed_adapter_falls_back_to_the_base(registry_file: RegistryFile) -> None:
    with registry_file.change() as registry:
        registry.remove("legal")
    catalog = _catalog(registry_file.load())
    assert catalog.adapter_for_label("acme", "legal") is None
    assert not catalog.may_use("acme", "legal")


def test_canary_takes_its_share_and_promote_ends_it(
    registry_file: RegistryFile, tmp_path: Path
) -> None:
    add_adapter(registry_file, "legal", _adapter_dir(tmp_path, "v2"))
    with registry_file.change() as registry:
        registry.set_canary("legal", 2, 0.25)
        with pytest.raises(RegistryError, match="already served"):
            registry.set_canary("legal", 1, 0.5)
    catalog = _catalog(registry_file.load())
    chosen = [catalog.version_of("legal", f"q-{i}") for i in range(2000)]
    share = chosen.count("legal@2") / len(chosen)
    assert 0.2 < share < 0.3 and set(chosen) == {"legal@1", "legal@2"}
    assert catalog.version_of("legal", "q-7") == catalog.version_of("legal", "q-7")  # stable
    assert catalog.version_of("legal@1", "q-7") == "legal@1"  # a named version is exact
    with registry_file.change() as registry:
        registry.promote("legal", 2)
    listed = registry_file.load().listing()[0]
    assert listed["serving"] == "legal@2" and listed["canary"] is None
    with registry_file.change() as registry:
        registry.set_canary("legal", 1, 0.1)
        registry.set_canary("legal", 1, 0.0)  # share 0 stops it
    assert registry_file.load().canaries() == {}
