"""The sections of Spillway's config (server, tenants, router, models, ledger, limits).

`orchestrator.config` assembles them into `SpillwayConfig` and loads YAML.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cascade.pricing import TokenPrice
from orchestrator.llm import VLLMEngineConfig
from orchestrator.remote import RemoteLLMConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AutoscalingSettings(Strict):
    min_replicas: int = Field(
        1, ge=0, description="Fewest replicas (0 lets an idle deployment scale to zero)."
    )
    max_replicas: int = Field(1, ge=1, description="Most replicas.")
    initial_replicas: int | None = Field(
        None, ge=0, description="Replicas at deploy time; default: min_replicas."
    )
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Ongoing requests per replica the autoscaler aims for."
    )
    upscale_delay_s: float = Field(
        30.0, ge=0, description="Load must stay above target this long before scaling up (s)."
    )
    downscale_delay_s: float = Field(
        600.0, ge=0, description="Load must stay below target this long before scaling down (s)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingSettings:
        low, high, start = self.min_replicas, self.max_replicas, self.initial_replicas
        if low > high or (start is not None and not low <= start <= high):
            raise ValueError("need min_replicas <= initial_replicas <= max_replicas")
        return self

    def serve_options(self) -> dict[str, Any]:
        """Ray Serve's autoscaling_config."""
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "initial_replicas": self.initial_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }


class ReplicaSettings(Strict):
    num_replicas: int = Field(1, ge=1, description="Replicas when autoscaling is not set.")
    autoscaling: AutoscalingSettings | None = Field(
        None, description="Autoscale between min_replicas and max_replicas; replaces num_replicas."
    )
    max_ongoing_requests: int = Field(
        64, ge=1, description="Requests one replica handles at once; more wait in the caller."
    )
    max_surge_percent: int = Field(
        0,
        ge=0,
        le=100,
        description="Rolling updates: extra replicas (percent of the target) started before old "
        "ones stop; 0 stops old ones first.",
    )

    def serve_options(self) -> dict[str, Any]:
        """Keyword arguments of serve.deployment for these settings."""
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_surge_percent": self.max_surge_percent,
        }
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling.serve_options()
        else:
            options["num_replicas"] = self.num_replicas
        return options


class ServerSettings(Strict):
    host: str = Field("127.0.0.1", description="Address the HTTP proxy binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP endpoint.")
    num_cpus: int = Field(
        2, gt=0, description="Logical CPUs given to the local Ray instance (ray.init num_cpus)."
    )
    state_dir: str = Field(
        ".spillway", description="Directory for caches, Ray session files and run-time state."
    )
    ingress_num_cpus: float = Field(
        0.25, gt=0, description="CPUs reserved by each ingress replica (fractional is fine)."
    )
    ingress_replicas: int = Field(1, ge=1, description="Number of ingress replicas.")
    ingress_autoscaling: AutoscalingSettings | None = Field(
        None, description="Autoscale the ingress; replaces ingress_replicas."
    )
    request_timeout_s: float = Field(
        120, gt=0, description="Upper bound on one query's whole processing time, in seconds."
    )
    access_log: bool = Field(
        False,
        description="Ray Serve's per-request access log lines (proxy and every replica). Off by "
        "default: the ledger already records every query, and on a small machine the log lines "
        "cost more than Spillway's own work (BENCHMARKS.md, load test).",
    )


class TenantSettings(Strict):
    name: str = Field(description="Tenant name recorded in the ledger.", min_length=1)
    api_keys: list[str] = Field(
        description="API keys of this tenant: a literal key, or 'sha256:<hex>' of the key.",
        min_length=1,
    )
    admin: bool = Field(False, description="Whether these keys may read stats and dashboards.")

    def key_digests(self) -> set[str]:
        """SHA-256 hex digests of this tenant's keys (literal keys are hashed here)."""
        return {_digest_of(key) for key in self.api_keys}


def _digest_of(key: str) -> str:
    if key.startswith("sha256:"):
        return key.removeprefix("sha256:").lower()
    return hashlib.sha256(key.encode()).hexdigest()


class RouterSettings(Strict):
    artifact: str = Field(description="Path of the router artifact directory.")
    min_probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Routes with a lower calibrated probability go to the small base model.",
    )
    adapters: dict[str, str | None] = Field(
        default_factory=dict,
        description="Router label -> small-model adapter name; null or absent: the base model.",
    )
    num_cpus: float = Field(0.25, gt=0, description="CPUs reserved by each router replica.")
    max_batch_size: int = Field(32, ge=1, description="Largest batch of queries routed at once.")
    batch_wait_timeout_s: float = Field(
        0.005, ge=0, description="How long the router waits to fill a batch, in seconds."
    )
    replicas: ReplicaSettings = Field(
        default_factory=ReplicaSettings, description="Replica count or autoscaling."
    )


class ModelSettings(Strict):
    engine: VLLMEngineConfig | None = Field(
        None, description="vLLM engine inside Spillway; exactly one of engine and remote."
    )
    remote: RemoteLLMConfig | None = Field(
        None,
        description="An OpenAI-compatible server already running this model; exactly one of "
        "engine and remote.",
    )
    price: TokenPrice = Field(description="What this model's tokens cost.")
    num_cpus: float = Field(0.5, gt=0, description="CPUs reserved by each replica.")
    num_gpus: float = Field(
        0, ge=0, description="GPUs reserved by each replica (tensor_parallel_size on GPUs)."
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each replica reserves, e.g. to pin it to a worker group.",
    )
    replicas: ReplicaSettings = Field(
        default_factory=ReplicaSettings, description="Replica count or autoscaling."
    )

    @model_validator(mode="after")
    def _one_backend(self) -> ModelSettings:
        if (self.engine is None) == (self.remote is None):
            raise ValueError("set exactly one of engine (vLLM in Spillway) and remote (a server)")
        engine = self.engine
        if engine is not None and self.num_gpus and self.num_gpus < engine.tensor_parallel_size:
            raise ValueError("num_gpus must be at least engine.tensor_parallel_size")
        return self

    @property
    def served_name(self) -> str:
        backend = self.engine or self.remote
        assert backend is not None  # guaranteed by the validator
        return backend.served_name

    def adapter_names(self) -> list[str]:
        if self.engine is not None:
            return list(self.engine.adapters)
        return list(self.remote.adapters) if self.remote is not None else []


class LedgerSettings(Strict):
    url: str = Field(
        "sqlite:///.spillway/ledger.db",
        description="SQLAlchemy URL of the ledger: sqlite:///PATH (relative to the config file) "
        "or postgresql+psycopg://...",
    )
    url_env: str | None = Field(
        None,
        description="Environment variable holding the ledger URL (with its password); when set "
        "and non-empty it replaces url.",
    )

    def resolved_url(self) -> str:
        if self.url_env and os.environ.get(self.url_env):
            return os.environ[self.url_env]
        return self.url


class LimitSettings(Strict):
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest accepted request body, in bytes."
    )
    max_messages: int = Field(256, ge=1, description="Most messages accepted in one request.")
    default_max_tokens: int = Field(
        64, ge=1, description="Completion tokens generated when the request does not say."
    )
    max_tokens_limit: int = Field(
        512, ge=1, description="Largest max_tokens a request may ask for (400 above it)."
    )
