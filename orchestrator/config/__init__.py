"""The whole Spillway configuration: pydantic models (every field described, unknown keys are
errors) and loading YAML into them. Imports no backend and no HTTP: the other rooms import it.

- `loader`: `SpillwayConfig`, `load_config`, `validate_config_dict`, `ConfigError`;
- `settings`: the sections (server, router, models, ledger, limits, calls);
- `tenants`: tenants, their keys and adapters; `engine` and `remote`: how to run or reach a model.
"""

from __future__ import annotations

from orchestrator.config.loader import (
    ConfigError,
    SpillwayConfig,
    adapter_label_entries,
    load_config,
    router_label_problems,
    validate_cascade,
    validate_config_dict,
    with_cascade_file,
)
from orchestrator.config.tenants import TenantSettings

__all__ = [
    "ConfigError",
    "SpillwayConfig",
    "TenantSettings",
    "adapter_label_entries",
    "load_config",
    "router_label_problems",
    "validate_cascade",
    "validate_config_dict",
    "with_cascade_file",
]
