"""Config validation: every shipped config passes; errors name the field by its YAML path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from orchestrator.config import ConfigError, load_config, validate_config_dict
from tests.fakes import CONFIG

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["local.yaml", "production.yaml", "remote.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    config = load_config(REPO / "serve_config" / name)
    assert config.small.served_name != config.large.served_name


def test_local_paths_resolve_against_the_config_file() -> None:
    config = load_config(REPO / "serve_config" / "local.yaml")
    assert config.small.engine is not None
    assert config.small.engine.model == str(REPO / ".spillway" / "models" / "small")
    assert config.ledger.url == f"sqlite:///{REPO / '.spillway' / 'ledger.db'}"


def _problems(mutate: object) -> list[str]:
    data = copy.deepcopy(CONFIG)
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        validate_config_dict(data)
    return info.value.problems


def test_unknown_field_is_named() -> None:
    problems = _problems(lambda d: d["small"]["engine"].update(max_lora=3))
    assert any(p.startswith("small.engine.max_lora:") for p in problems)


def test_wrong_type_and_range_are_named() -> None:
    problems = _problems(lambda d: d["router"].update(min_probability=2))
    assert any(p.startswith("router.min_probability:") for p in problems)
    problems = _problems(lambda d: d["large"]["price"].update(output_per_million="-1"))
    assert any(p.startswith("large.price.output_per_million:") for p in problems)


def test_every_problem_is_reported() -> None:
    def two_errors(d: dict) -> None:  # type: ignore[type-arg]
        d["router"]["min_probability"] = 2
        d["limits"]["max_messages"] = 0

    assert len(_problems(two_errors)) == 2


def test_router_adapter_must_exist() -> None:
    problems = _problems(lambda d: d["router"]["adapters"].update(medical="medical"))
    assert any("medical" in p for p in problems)


def test_duplicate_key_across_tenants() -> None:
    problems = _problems(lambda d: d["tenants"].append({"name": "b", "api_keys": ["k"]}))
    assert any("also a key of" in p for p in problems)


def test_exactly_one_backend() -> None:
    problems = _problems(lambda d: d["large"].pop("engine"))
    assert any(p.startswith("large:") and "exactly one" in p for p in problems)


def test_yaml_errors_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text(yaml.safe_dump(["a list"]))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_config_check_cli_reports_paths_and_exit_code(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    data = copy.deepcopy(CONFIG)
    data["limits"]["max_messages"] = 0
    data["small"]["engine"]["dtype"] = "int3"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "2 problem(s)" in result.output
    assert "limits.max_messages:" in result.output
    assert "small.engine.dtype:" in result.output
    good = CliRunner().invoke(main, ["config", "check", str(REPO / "serve_config/local.yaml")])
    assert good.exit_code == 0 and "ok" in good.output


@pytest.mark.parametrize(("enabled", "value"), [(True, "1"), (False, "0")])
def test_grpc_data_plane_reaches_every_ray_process(enabled: bool, value: str) -> None:
    from orchestrator.runtime import runtime_env_vars

    data = copy.deepcopy(CONFIG)
    data["server"] = {"grpc_data_plane": enabled}
    assert runtime_env_vars(validate_config_dict(data))["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == value


def test_grpc_data_plane_is_on_by_default_and_in_the_kuberay_pods() -> None:
    assert validate_config_dict(copy.deepcopy(CONFIG)).server.grpc_data_plane is True
    manifest = yaml.safe_load((REPO / "serve_config" / "kuberay" / "rayservice.yaml").read_text())
    cluster = manifest["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]]
    templates += [group["template"] for group in cluster["workerGroupSpecs"]]
    for template in templates:
        for container in template["spec"]["containers"]:
            env = {item["name"]: item.get("value") for item in container["env"]}
            assert env["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "1", container["name"]


def test_http_server_ingress_refuses_ingress_autoscaling() -> None:
    data = copy.deepcopy(CONFIG)
    data["server"] = {
        "http_server": "ingress",
        "ingress_autoscaling": {"min_replicas": 1, "max_replicas": 2},
    }
    with pytest.raises(ConfigError) as caught:
        validate_config_dict(data)
    assert "server:" in str(caught.value)
    assert "http_server: 'ingress' cannot be combined with ingress_autoscaling" in str(caught.value)
    data["server"]["http_server"] = "serve_proxy"
    assert validate_config_dict(data).server.ingress_autoscaling is not None


def test_http_server_per_shipped_config_and_proxy_placement() -> None:
    from orchestrator.runtime import serve_proxy_location

    expected = {"local.yaml": "ingress", "remote.yaml": "ingress", "production.yaml": "serve_proxy"}
    for name, mode in expected.items():
        config = load_config(REPO / "serve_config" / name)
        assert config.server.http_server == mode, name
        assert serve_proxy_location(config) == ("Disabled" if mode == "ingress" else None)
    assert validate_config_dict(copy.deepcopy(CONFIG)).server.http_server == "serve_proxy"


def test_serve_host_and_port_options_reach_the_config() -> None:
    from orchestrator.runtime import with_address

    config = validate_config_dict(copy.deepcopy(CONFIG))
    moved = with_address(config, None, 8123)
    assert (moved.server.host, moved.server.port) == (config.server.host, 8123)
    assert with_address(config, "0.0.0.0", None).server.host == "0.0.0.0"
    assert with_address(config, None, None) is config


def test_placements_default_to_the_ingress_and_an_engine_stays_in_its_deployment() -> None:
    config = validate_config_dict(copy.deepcopy(CONFIG))
    assert config.router.placement == "ingress"
    assert not config.small.in_ingress  # an engine: its own deployment
    data = copy.deepcopy(CONFIG)
    data["large"] = {
        "remote": {"base_url": "http://127.0.0.1:9/v1", "served_name": "big"},
        "price": data["large"]["price"],
    }
    assert validate_config_dict(data).large.in_ingress  # a remote model: called from the ingress
    data["large"]["placement"] = "deployment"
    assert not validate_config_dict(data).large.in_ingress
    data["small"]["placement"] = "ingress"
    with pytest.raises(ConfigError) as caught:
        validate_config_dict(data)
    assert "small:" in str(caught.value) and "placement: 'ingress' is for a remote model" in str(
        caught.value
    )
    production = load_config(REPO / "serve_config" / "production.yaml")
    assert production.router.placement == "deployment"  # the Router of kuberay/rayservice.yaml


def test_deployment_settings_of_a_part_placed_in_the_ingress_are_refused() -> None:
    """Placed in the ingress, the router and a remote model have no replicas of their own:
    their num_cpus/replicas would do nothing, so the config names them as errors."""
    data = yaml.safe_load((REPO / "serve_config" / "remote.yaml").read_text())
    data["router"]["num_cpus"] = 1
    with pytest.raises(ConfigError, match="num_cpus: only for placement 'deployment'"):
        validate_config_dict(data)
    data["router"]["placement"] = "deployment"
    assert validate_config_dict(data).router.num_cpus == 1
    data["large"]["replicas"] = {"num_replicas": 2}
    with pytest.raises(ConfigError, match="replicas: only for placement 'deployment'"):
        validate_config_dict(data)
    data["large"]["placement"] = "deployment"
    assert validate_config_dict(data).large.replicas.num_replicas == 2
