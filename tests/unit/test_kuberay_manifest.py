"""serve_config/kuberay/rayservice.yaml, checked strictly against the KubeRay v1.7.0 RayService
CRD (../shared/data/kuberay/, unknown fields are errors as with `kubectl apply
--validate=strict`) and its embedded serveConfigV2 against Ray Serve's `ServeDeploySchema`, so
a typo in the manifest fails CI. Each check is also shown to catch a typo."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from tests.kuberay_schema import crd_schema, problems, unknown_serve_keys

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "serve_config" / "kuberay" / "rayservice.yaml"


@pytest.fixture(scope="module")
def schema(shared_data: Path) -> dict[str, Any]:
    crd = yaml.safe_load((shared_data / "kuberay" / "ray.io_rayservices.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == "RayService"
    return crd_schema(crd, "v1")


@pytest.fixture
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return copy.deepcopy(data)


def serve_problems(manifest: dict[str, Any]) -> list[str]:
    serve_config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)  # raises on a wrong value
    return unknown_serve_keys(serve_config, ServeDeploySchema)


def test_the_manifest_passes_the_strict_crd_check(
    schema: dict[str, Any], manifest: dict[str, Any]
) -> None:
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    assert problems(manifest, schema) == []


def test_its_serve_config_passes_serve_deploy_schema(manifest: dict[str, Any]) -> None:
    assert serve_problems(manifest) == []
    app = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"][0]
    assert app["import_path"] == "orchestrator.builder:app_builder"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda m: m["spec"].__setitem__("serveConfigv2", m["spec"].pop("serveConfigV2")),
            ".spec.serveConfigv2: unknown field",
        ),
        (
            lambda m: _head(m).__setitem__("imagePullPolcy", "Always"),
            ".spec.rayClusterConfig.headGroupSpec.template.spec.containers[0].imagePullPolcy: "
            "unknown field",
        ),
        (
            lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].__setitem__(
                "maxReplicas", "four"
            ),
            "maxReplicas: must be integer",
        ),
        (
            lambda m: m["spec"]["rayClusterConfig"].__setitem__(
                "upgradeStrategy", {"type": "Rolling"}
            ),
            "'Rolling' is not one of ['Recreate', 'None']",
        ),
        (lambda m: m["metadata"].__setitem__("lables", {}), ".metadata.lables: unknown"),
    ],
    ids=["spec-key", "container-key", "type", "enum", "metadata"],
)
def test_a_typo_in_the_manifest_is_caught(
    schema: dict[str, Any], manifest: dict[str, Any], edit: Any, expected: str
) -> None:
    edit(manifest)
    found = problems(manifest, schema)
    assert len(found) == 1 and expected in found[0], found


def test_a_typo_in_serve_config_v2_is_caught(manifest: dict[str, Any]) -> None:
    text = manifest["spec"]["serveConfigV2"]
    manifest["spec"]["serveConfigV2"] = text.replace("user_config:", "user_confg:")
    assert serve_problems(manifest) == [
        ".applications[0].deployments[0].user_confg: unknown field of DeploymentSchema"
    ]
    manifest["spec"]["serveConfigV2"] = text.replace("route_prefix: /", "route_prefx: /")
    assert serve_problems(manifest) == [
        ".applications[0].route_prefx: unknown field of ServeApplicationSchema"
    ]


def _head(manifest: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"][
        "spec"
    ]["containers"][0]
    return container
