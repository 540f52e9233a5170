"""Tenants in the config: adapter catalogs, key loading (literal, digest, environment) and
keeping keys out of reprs, dumps and error messages."""

from __future__ import annotations

import copy
import hashlib
import logging
from typing import Any

import pytest

from orchestrator.config import ConfigError, SpillwayConfig, validate_config_dict
from orchestrator.config.tenants import TenantSettings
from orchestrator.errors import NotFound
from orchestrator.query.service import QueryService
from orchestrator.query.target import Target
from orchestrator.query.tenancy import AdapterCatalog
from tests.fakes import CONFIG, FakeModels

SECRET = "sk-very-secret-0123456789"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config_with(tenants: list[dict[str, Any]], **adapters: str) -> SpillwayConfig:
    data = copy.deepcopy(CONFIG)
    data["tenants"] = tenants
    data["small"]["engine"]["adapters"].update({name: f"/a/{name}" for name in adapters})
    return validate_config_dict(data)


def three_tenants() -> SpillwayConfig:
    return config_with(
        [
            {"name": "acme", "api_keys": ["ka"], "adapters": {"legal": "acme-legal"}},
            {"name": "beta", "api_keys": ["kb"], "adapters": {"legal": "beta-legal"}},
            {"name": "gamma", "api_keys": ["kc"]},
        ],
        **{"acme-legal": "", "beta-legal": ""},
    )


def problems(tenants: list[dict[str, Any]], **changes: Any) -> list[str]:
    data = copy.deepcopy(CONFIG)
    data["tenants"] = tenants
    data["small"]["engine"]["adapters"]["acme-legal"] = "/a/acme-legal"
    for section, value in changes.items():
        data[section].update(value)
    with pytest.raises(ConfigError) as info:
        validate_config_dict(data)
    return info.value.problems


# ----- the catalog -------------------------------------------------------------------------------
def test_label_resolves_to_own_then_shared_then_base() -> None:
    catalog = QueryService(three_tenants(), FakeModels(0.9, {}).backends()).catalog
    assert catalog.adapter_for_label("acme", "legal") == "acme-legal"
    assert catalog.adapter_for_label("beta", "legal") == "beta-legal"
    assert catalog.adapter_for_label("gamma", "legal") == "legal"  # the shared one
    assert catalog.adapter_for_label("acme", "general") is None  # router maps it to base
    assert catalog.adapter_for_label("acme", "unknown-label") is None


def test_each_tenant_sees_shared_and_own_adapters_only() -> None:
    catalog = QueryService(three_tenants(), FakeModels(0.9, {}).backends()).catalog
    assert catalog.shared == frozenset({"legal"})
    assert catalog.adapters_of("acme") == {"legal", "acme-legal"}
    assert catalog.adapters_of("beta") == {"legal", "beta-legal"}
    assert catalog.adapters_of("gamma") == {"legal"}
    assert catalog.adapters_of(None) == {"legal"}
    assert catalog.model_names("acme") == ["auto", "small", "acme-legal", "legal", "large"]
    assert catalog.model_names("gamma") == ["auto", "small", "legal", "large"]


@pytest.mark.parametrize("owner", ["acme", "beta"])
def test_another_tenants_adapter_is_an_unknown_model(owner: str) -> None:
    service = QueryService(three_tenants(), FakeModels(0.9, {}).backends())
    private = f"{owner}-legal"
    assert service.resolve_target(private, owner) == Target("small", adapter=private)
    for other in {"acme", "beta", "gamma"} - {owner}:
        with pytest.raises(NotFound) as found:
            service.resolve_target(private, other)
        with pytest.raises(NotFound) as unknown:
            service.resolve_target("no-such-model", other)
        assert found.value.code == unknown.value.code == "model_not_found"
        assert found.value.message.replace(private, "X") == unknown.value.message.replace(
            "no-such-model", "X"
        )
        available = found.value.message.split("Available:")[1]
        assert private not in available
        assert ("acme-legal" in available) == (other == "acme")


def test_catalog_build_is_pure() -> None:
    tenant = TenantSettings(name="a", api_keys=["k"], adapters={"x": "a-x"})
    catalog = AdapterCatalog.build(
        small="s", large="l", adapters=["a-x", "y"], routes={"x": "y"}, tenants=[tenant]
    )
    assert catalog.adapter_for_label("a", "x") == "a-x"
    assert catalog.adapter_for_label("b", "x") == "y"
    assert catalog.adapters_of("b") == {"y"}


# ----- catalog validation ----------------------------------------------------------------------
def test_tenant_adapter_must_exist() -> None:
    found = problems([{"name": "a", "api_keys": ["k"], "adapters": {"legal": "nope"}}])
    assert any("tenants.0.adapters.legal" in p and "'nope'" in p for p in found)


def test_adapter_is_private_to_one_tenant() -> None:
    found = problems(
        [
            {"name": "a", "api_keys": ["k1"], "adapters": {"legal": "acme-legal"}},
            {"name": "b", "api_keys": ["k2"], "adapters": {"contracts": "acme-legal"}},
        ]
    )
    assert any("tenants.1.adapters.contracts" in p and "private to tenant 'a'" in p for p in found)


def test_router_may_not_map_a_label_to_a_private_adapter() -> None:
    found = problems(
        [{"name": "a", "api_keys": ["k"], "adapters": {"legal": "acme-legal"}}],
        router={"adapters": {"legal": "acme-legal"}},
    )
    assert any(p.startswith("(top level)") or "router.adapters.legal" in p for p in found)
    assert any("private to tenant 'a'" in p for p in found)


def test_tenant_names_are_unique_and_simple() -> None:
    found = problems([{"name": "a", "api_keys": ["k1"]}, {"name": "a", "api_keys": ["k2"]}])
    assert any(p.startswith("tenants:") and "unique" in p for p in found)
    found = problems([{"name": "a b", "api_keys": ["k1"]}])
    assert any(p.startswith("tenants.0.name:") for p in found)


# ----- keys -------------------------------------------------------------------------------------
def test_a_tenant_needs_keys() -> None:
    found = problems([{"name": "a"}])
    assert any("needs api_keys or api_keys_env" in p for p in found)


def test_literal_keys_are_kept_as_digests_only() -> None:
    config = config_with([{"name": "a", "api_keys": [SECRET, f"sha256:{sha('other').upper()}"]}])
    tenant = config.tenants[0]
    assert tenant.api_keys == [f"sha256:{sha(SECRET)}", f"sha256:{sha('other')}"]
    assert tenant.key_digests() == {sha(SECRET), sha("other")}
    for text in (repr(config), str(config.model_dump()), config.model_dump_json()):
        assert SECRET not in text
    again = SpillwayConfig.model_validate(config.model_dump(mode="json"))  # as replicas do
    assert again.tenant_by_key_digest().keys() == {sha(SECRET), sha("other")}


def test_bad_digest_is_refused() -> None:
    found = problems([{"name": "a", "api_keys": ["sha256:abc"]}])
    assert any(p.startswith("tenants.0.api_keys") and "64 hexadecimal" in p for p in found)


def test_keys_from_the_environment() -> None:
    config = config_with(
        [
            {"name": "a", "api_keys_env": ["A_KEY", "A_DIGEST"]},
            {"name": "b", "api_keys": ["kb"], "api_keys_env": ["B_KEY"]},
        ]
    )
    env = {"A_KEY": SECRET, "A_DIGEST": f"sha256:{sha('k2')}", "B_KEY": " kb2 \n"}
    table = config.tenant_by_key_digest(env)
    assert {d: t.name for d, t in table.items()} == {
        sha(SECRET): "a",
        sha("k2"): "a",
        sha("kb"): "b",
        sha("kb2"): "b",
    }
    assert SECRET not in repr(config) and "A_KEY" in repr(config)


def test_missing_environment_variable_names_tenant_and_variable() -> None:
    config = config_with([{"name": "a", "api_keys_env": ["A_KEY"]}])
    for env in ({}, {"A_KEY": "  "}):
        with pytest.raises(ConfigError) as info:
            config.tenant_by_key_digest(env)
        assert info.value.problems == [
            "tenant 'a': environment variable A_KEY (api_keys_env) is not set"
        ]


def test_environment_key_shared_by_two_tenants_is_refused() -> None:
    config = config_with(
        [{"name": "a", "api_keys": [SECRET]}, {"name": "b", "api_keys_env": ["B_KEY"]}]
    )
    with pytest.raises(ConfigError) as info:
        config.tenant_by_key_digest({"B_KEY": SECRET})
    assert "is also a key of" in str(info.value) and SECRET not in str(info.value)


def test_invalid_env_name_and_no_key_in_validation_errors(caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    found = problems([{"name": "a", "api_keys": [SECRET], "api_keys_env": ["1BAD"]}])
    assert any(p.startswith("tenants.0.api_keys_env") for p in found)
    data = copy.deepcopy(CONFIG)
    data["tenants"] = [{"name": "a", "api_keys": [SECRET], "unknown": SECRET}]
    with pytest.raises(Exception) as info:
        SpillwayConfig.model_validate(data)
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


def test_limits_are_validated() -> None:
    found = problems([{"name": "a", "api_keys": ["k"], "requests_per_minute": 0}])
    assert any(p.startswith("tenants.0.requests_per_minute") for p in found)
    found = problems([{"name": "a", "api_keys": ["k"], "monthly_budget_usd": "-1"}])
    assert any(p.startswith("tenants.0.monthly_budget_usd") for p in found)


def test_production_config_tenants() -> None:
    from pathlib import Path

    from orchestrator.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "serve_config" / "production.yaml")
    catalog = QueryService(config, FakeModels(0.9, {}).backends()).catalog
    assert catalog.adapter_for_label("acme", "legal") == "acme-legal"
    assert catalog.adapter_for_label("globex", "legal") == "legal"
    assert "acme-legal" not in catalog.adapters_of("globex")
    with pytest.raises(ConfigError, match="SPILLWAY_KEY_OPS"):
        config.tenant_by_key_digest({})
    env = {"SPILLWAY_KEY_OPS": "o", "SPILLWAY_KEY_ACME": "a", "SPILLWAY_KEY_GLOBEX": "g"}
    table = config.tenant_by_key_digest(env)
    assert {t.name for t in table.values()} == {"ops", "acme", "globex"}
    assert table[sha("a")].monthly_budget_usd == 5000


def test_serve_stops_before_ray_when_a_key_variable_is_missing(tmp_path: Any) -> None:
    import yaml
    from click.testing import CliRunner

    from orchestrator.cli import main

    data = copy.deepcopy(CONFIG)
    data["tenants"] = [{"name": "acme", "api_keys_env": ["SPILLWAY_TEST_UNSET_KEY"]}]
    path = tmp_path / "spillway.yaml"
    path.write_text(yaml.safe_dump(data))
    checked = CliRunner().invoke(main, ["config", "check", str(path)])
    assert checked.exit_code == 0  # config check needs no secrets
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "tenant 'acme': environment variable SPILLWAY_TEST_UNSET_KEY" in result.output
