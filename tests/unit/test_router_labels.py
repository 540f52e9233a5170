"""Which config entries a replacement router artifact's labels would leave without queries
(`router_label_problems`, the check of `PUT /v1/admin/router` and the Ingress user_config)."""

from __future__ import annotations

import copy

from orchestrator.config import SpillwayConfig, router_label_problems, validate_config_dict
from tests.fakes import CONFIG


def _config(tenant_adapters: dict[str, str] | None = None) -> SpillwayConfig:
    data = copy.deepcopy(CONFIG)
    data["router"]["adapters"] = {"legal": "legal", "medical": "medical", "general": None}
    data["small"]["engine"]["adapters"] = {
        "legal": "/a/legal",
        "medical": "/a/medical",
        "acme-medical": "/a/acme-medical",
    }
    data["tenants"] = [{"name": "acme", "api_keys": ["k1"], "adapters": tenant_adapters or {}}]
    return validate_config_dict(data)


def test_labels_covering_every_adapter_fit() -> None:
    config = _config()
    assert router_label_problems(config, ["legal", "medical", "code"]) == []
    # `general: null` routes to the base model, which any artifact reaches by abstaining.
    assert router_label_problems(config, ["legal", "medical"]) == []


def test_missing_labels_are_named_by_their_config_entry() -> None:
    config = _config({"medical": "acme-medical"})
    problems = router_label_problems(config, ["legal", "general"])
    assert problems == ["router.adapters.medical", "tenants[0].adapters.medical"]
