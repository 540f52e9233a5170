"""The whole Spillway configuration as pydantic models; load and validate YAML.

Relative paths in a config file are resolved against the directory of that file, so
`spillway serve --config serve_config/local.yaml` works from any working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from cascade.policy import CascadePolicy, RoutePolicy
from orchestrator.config.settings import (
    LedgerSettings,
    LimitSettings,
    ModelSettings,
    RouterSettings,
    ServerSettings,
    Strict,
)
from orchestrator.config.tenants import TenantSettings, check_tenant_adapters

__all__ = [
    "ConfigError",
    "SpillwayConfig",
    "adapter_label_entries",
    "load_config",
    "router_label_problems",
    "validate_cascade",
    "validate_config_dict",
    "with_cascade_file",
]


class SpillwayConfig(Strict):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # no API keys in errors

    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP and Ray.")
    tenants: Annotated[list[TenantSettings], Field(min_length=1)] = Field(
        description="Who may call the service, by API key."
    )
    router: RouterSettings = Field(description="The domain router.")
    small: ModelSettings = Field(description="The small model with its LoRA adapters.")
    large: ModelSettings = Field(description="The large model answers escalated queries.")
    cascade: CascadePolicy = Field(
        default_factory=lambda: CascadePolicy(default=RoutePolicy(threshold=0.5)),
        description="Confidence signal and threshold per route (or use cascade_file).",
    )
    cascade_file: str | None = Field(
        None,
        description="A thresholds file from `spillway cascade calibrate` (relative to this "
        "config file) whose `policy` becomes `cascade`; not allowed together with `cascade`.",
    )
    ledger: LedgerSettings = Field(default_factory=LedgerSettings, description="Cost ledger.")
    limits: LimitSettings = Field(default_factory=LimitSettings, description="Input limits.")

    @field_validator("tenants")
    @classmethod
    def _keys_are_unique(cls, tenants: list[TenantSettings]) -> list[TenantSettings]:
        names = [tenant.name for tenant in tenants]
        if len(set(names)) != len(names):
            raise ValueError("tenant names must be unique (the ledger keys rows by name)")
        _unique_keys({t.name: t.key_digests() for t in tenants})
        return tenants

    @model_validator(mode="after")
    def _tenant_adapters(self) -> SpillwayConfig:
        check_tenant_adapters(self.tenants, self.router.adapters, self.small.adapter_names())
        return self

    @model_validator(mode="after")
    def _skip_has_scorer(self) -> SpillwayConfig:
        """`skip_below` needs a difficulty scorer, or the setting would do nothing."""
        for where in skips_without_scorer(self.cascade, self.router):
            raise ValueError(f"cascade.{'.'.join(where)}: {SKIP_NEEDS_SCORER}")
        return self

    @model_validator(mode="after")
    def _adapters_exist(self) -> SpillwayConfig:
        known = set(self.small.adapter_names())
        for label, adapter in self.router.adapters.items():
            if adapter is not None and adapter not in known:
                raise ValueError(
                    f"router.adapters.{label}: adapter {adapter!r} is not one of "
                    f"the small model's adapters ({', '.join(sorted(known)) or 'none'})"
                )
        names = [self.small.served_name, self.large.served_name, *known]
        if len(set(names)) != len(names):
            raise ValueError("small and large served_name and adapter names must all differ")
        return self

    def tenant_by_key_digest(
        self, environ: Mapping[str, str] | None = None
    ) -> dict[str, TenantSettings]:
        """Key digest -> tenant, including the keys in `api_keys_env` variables (read from
        `environ`, default os.environ). ConfigError names a missing variable or a key two
        tenants share; key values never appear in messages."""
        env = os.environ if environ is None else environ
        try:
            digests = {t.name: t.key_digests() | t.env_key_digests(env) for t in self.tenants}
            _unique_keys(digests)
        except ValueError as exc:
            raise ConfigError("tenants", [str(exc)]) from None
        by_name = {t.name: t for t in self.tenants}
        return {digest: by_name[name] for name, keys in digests.items() for digest in keys}

    def price_table(self) -> dict[str, Decimal]:
        """Prices per million tokens, for display."""
        return {
            "small_input": self.small.price.input_per_million,
            "small_output": self.small.price.output_per_million,
            "large_input": self.large.price.input_per_million,
            "large_output": self.large.price.output_per_million,
        }


SKIP_NEEDS_SCORER = (
    "needs router.difficulty_artifact (a scorer trained with "
    "`spillway router train --label-field small_correct`)"
)


def skips_without_scorer(policy: CascadePolicy, router: RouterSettings) -> list[tuple[str, ...]]:
    """Where (inside the cascade section) a `skip_below` is set that no scorer would feed."""
    if router.difficulty_artifact is not None:
        return []
    policies = {("default",): policy.default} | {
        ("routes", name): route for name, route in policy.routes.items()
    }
    return [(*where, "skip_below") for where, p in policies.items() if p.skip_below is not None]


def validate_cascade(data: Any, router: RouterSettings) -> CascadePolicy:
    """A replacement `cascade` section for a running service, checked as the config checks
    it (the same model, and `skip_below` only with a difficulty scorer). Raises pydantic's
    ValidationError, each error located inside the section (`default.threshold`)."""
    policy = CascadePolicy.model_validate(data)
    problems = skips_without_scorer(policy, router)
    if problems:
        raise ValidationError.from_exception_data(
            "CascadePolicy",
            [
                InitErrorDetails(
                    type=PydanticCustomError("skip_without_scorer", SKIP_NEEDS_SCORER),
                    loc=where,
                    input=None,
                )
                for where in problems
            ],
        )
    return policy


def adapter_label_entries(config: SpillwayConfig) -> list[tuple[str, str]]:
    """Each (label, config entry) that sends a router label to an adapter: `router.adapters`
    (labels mapped to null go to the base model and need no label) and every tenant's."""
    entries = [
        (label, f"router.adapters.{label}")
        for label, adapter in config.router.adapters.items()
        if adapter is not None
    ]
    for index, tenant in enumerate(config.tenants):
        entries += [(label, f"tenants[{index}].adapters.{label}") for label in tenant.adapters]
    return entries


def router_label_problems(config: SpillwayConfig, labels: list[str]) -> list[str]:
    """What a replacement router artifact with these labels would break: each config entry
    whose label the artifact cannot predict, so that adapter would get no query. Empty: the
    labels fit."""
    known = set(labels)
    return [where for label, where in adapter_label_entries(config) if label not in known]


def _unique_keys(digests: dict[str, set[str]]) -> None:
    seen: dict[str, str] = {}
    for name, keys in digests.items():
        for digest in keys:
            if digest in seen:
                raise ValueError(f"an API key of tenant {name!r} is also a key of {seen[digest]!r}")
            seen[digest] = name


class ConfigError(Exception):
    """A config file that cannot be used; `problems` lists each error with its YAML path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _format_error(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{path}: {error['msg']}"


def validate_config_dict(
    data: Any, source: str = "<config>", config_dir: Path | None = None
) -> SpillwayConfig:
    """Validate parsed YAML; raise ConfigError naming every bad field by its path.

    A relative `cascade_file` is read relative to `config_dir` (default: the working directory).
    """
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    data = with_cascade_file(data, source, config_dir or Path.cwd())
    try:
        return SpillwayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_format_error(e) for e in exc.errors()]) from None


def with_cascade_file(data: dict[str, Any], source: str, config_dir: Path) -> dict[str, Any]:
    """`data` with `cascade` taken from the `cascade_file` (made absolute), if one is named.

    Inline `cascade` and `cascade_file` are exclusive: edit the thresholds file to pin a route.
    """
    name = data.get("cascade_file")
    if name is None:
        return data
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(source, ["cascade_file: expected the path of a thresholds file"])
    if "cascade" in data:
        raise ConfigError(
            source,
            [
                "cascade_file: set either cascade (an inline policy) or cascade_file (a thresholds "
                "file from `spillway cascade calibrate`), not both"
            ],
        )
    path = Path(name).expanduser()
    path = path if path.is_absolute() else (config_dir / path).resolve()
    return {**data, "cascade": _read_policy(path, source), "cascade_file": str(path)}


def _read_policy(path: Path, source: str) -> dict[str, Any]:
    """The `policy` of a thresholds file, validated; errors name the file and the field."""
    from cascade.calibrate import policy_from_file_data

    def fail(problem: str) -> ConfigError:
        return ConfigError(source, [f"cascade_file: {path}: {problem}"])

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror}") from None
    try:
        file_data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise fail(f"not valid YAML or JSON: {exc}") from None
    try:
        policy = policy_from_file_data(file_data)
    except ValidationError as exc:
        problems = [f"cascade_file: {path}: policy.{_format_error(e)}" for e in exc.errors()]
        raise ConfigError(source, problems) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    return policy.model_dump(mode="json")


def _resolve_paths(config: SpillwayConfig, base: Path) -> SpillwayConfig:
    """Make the config's relative file paths absolute, relative to `base`."""

    def resolve(value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    config.server.state_dir = resolve(config.server.state_dir)
    config.router.artifact = resolve(config.router.artifact)
    if config.router.difficulty_artifact is not None:
        config.router.difficulty_artifact = resolve(config.router.difficulty_artifact)
    for model in (config.small, config.large):
        engine = model.engine
        if engine is None:
            continue
        if not _looks_like_hub_name(engine.model):
            engine.model = resolve(engine.model)
        engine.adapters = {name: resolve(p) for name, p in engine.adapters.items()}
    url = config.ledger.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        config.ledger.url = "sqlite:///" + resolve(url.removeprefix("sqlite:///"))
    if config.ledger.spool_file:
        config.ledger.spool_file = resolve(config.ledger.spool_file)
    if config.ledger.journal_dir:
        config.ledger.journal_dir = resolve(config.ledger.journal_dir)
    return config


def _looks_like_hub_name(model: str) -> bool:
    """'meta-llama/Llama-3.1-8B-Instruct' is a hub id, './models/x' or 'models/x' a path."""
    return (
        model.count("/") == 1 and not model.startswith((".", "/", "~")) and "\\" not in model
    ) and not Path(model).exists()


def load_config(path: str | Path) -> SpillwayConfig:
    """Read, validate and resolve a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    config = validate_config_dict(data, str(path), path.resolve().parent)
    return _resolve_paths(config, path.resolve().parent)
