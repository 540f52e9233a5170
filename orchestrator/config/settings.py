"""The sections of Spillway's config (server, tenants, router, models, ledger, limits).

`orchestrator.config.loader` assembles them into `SpillwayConfig` and loads YAML.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from cascade.pricing import TokenPrice
from orchestrator.config.base import Strict
from orchestrator.config.engine import VLLMEngineConfig
from orchestrator.config.remote import RemoteLLMConfig


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


HttpServer = Literal["serve_proxy", "ingress"]
HTTP_SERVER_INGRESS: HttpServer = "ingress"
HTTP_SERVER_SERVE_PROXY: HttpServer = "serve_proxy"


class ServerSettings(Strict):
    host: str = Field("127.0.0.1", description="Address the HTTP endpoint binds to.")
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
    grpc_data_plane: bool = Field(
        True,
        description="Carry requests from Ray Serve's HTTP proxy to the ingress and between "
        "deployments over Serve's gRPC data plane (RAY_SERVE_USE_GRPC_BY_DEFAULT=1) instead of "
        "Ray actor calls; the load test's overhead p99 about halves with it (BENCHMARKS.md). "
        "Applied by `spillway serve`; on a KubeRay cluster the pods' environment sets it "
        "(serve_config/kuberay/rayservice.yaml).",
    )
    ingress_niceness: int | None = Field(
        0,
        ge=-20,
        le=19,
        description="CPU niceness of each ingress replica's process (every thread). Ray starts "
        "its workers at 15, so where other work fills the cores the replica that answers every "
        "client gets the CPU last (BENCHMARKS.md, request path); 0 makes it an ordinary "
        "process. Lowering niceness needs root or CAP_SYS_NICE: without it the replica keeps "
        "Ray's and logs a warning. null: leave Ray's.",
    )
    http_server: HttpServer = Field(
        HTTP_SERVER_SERVE_PROXY,
        description="Who answers HTTP on host:port. 'serve_proxy': Ray Serve's HTTP proxy, one "
        "per node, forwards each request to an ingress replica; the choice for a Ray cluster. "
        "'ingress': each ingress replica serves HTTP itself (the replicas of one machine share "
        "the port through SO_REUSEPORT) and Serve's proxy is not started; one hop fewer, so "
        "Spillway's overhead p99 drops about fourfold (BENCHMARKS.md), but only for one machine "
        "and without ingress_autoscaling (Serve does not see these requests).",
    )

    @model_validator(mode="after")
    def _ingress_server_is_not_autoscaled(self) -> ServerSettings:
        if self.http_server == HTTP_SERVER_INGRESS and self.ingress_autoscaling is not None:
            raise ValueError(
                "http_server: 'ingress' cannot be combined with ingress_autoscaling (Serve's "
                "autoscaler does not see requests the replicas answer themselves); use "
                "ingress_replicas, or http_server: 'serve_proxy'"
            )
        return self


class CallSettings(Strict):
    """How the ingress calls one deployment: a time limit per attempt, and retries.

    Only transient failures are retried (a replica that died or is unreachable, an overloaded
    deployment); request errors (unknown adapter, prompt too long) and timeouts are not: a
    timed-out attempt has already spent its time budget. See docs/cluster.md, "Faults"."""

    timeout_s: float = Field(
        60.0, gt=0, description="Time limit of one attempt, in seconds (streams: per delta)."
    )
    retries: int = Field(
        1, ge=0, le=5, description="Extra attempts after a transient failure (0: no retry)."
    )
    backoff_s: float = Field(
        0.2, ge=0, le=10, description="Wait before the first retry; doubles for each next one."
    )


Placement = Literal["ingress", "deployment"]
PLACEMENT_INGRESS: Placement = "ingress"
PLACEMENT_DEPLOYMENT: Placement = "deployment"


def _router_calls() -> CallSettings:
    return CallSettings(timeout_s=10.0, retries=1, backoff_s=0.1)


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
    difficulty_artifact: str | None = Field(
        None,
        description="A router artifact trained on true/false labels ('was the small model "
        "enough?', `spillway router train --label-field small_correct`). Its probability of "
        "`true` is compared with each route's `cascade.*.skip_below` before generation: below "
        "it, the query goes straight to the large model (reason `predicted_hard`).",
    )
    placement: Placement = Field(
        PLACEMENT_INGRESS,
        description="Where the router runs. 'ingress' (default): loaded in each ingress "
        "replica, no deployment hop (the shipped MiniLM router answers in 0.2-5 ms there, "
        "the hop alone cost about 5 ms p50 / 11 ms p99; BENCHMARKS.md); queries arriving while "
        "a batch is predicted form the next batch; a new artifact is swapped in through the "
        "Ingress deployment's user_config (router_artifact_path). 'deployment': a Router "
        "deployment of its own (num_cpus, replicas), swapped through its user_config "
        "(artifact_path); for encoders heavy enough to want their own replicas or a GPU.",
    )
    num_cpus: float = Field(
        0.25, gt=0, description="CPUs reserved by each router replica (placement: deployment)."
    )
    max_batch_size: int = Field(32, ge=1, description="Largest batch of queries routed at once.")
    batch_wait_timeout_s: float = Field(
        0.005, ge=0, description="How long the router waits to fill a batch, in seconds."
    )
    replicas: ReplicaSettings = Field(
        default_factory=ReplicaSettings,
        description="Replica count or autoscaling (placement: deployment).",
    )
    calls: CallSettings = Field(
        default_factory=_router_calls,
        description="Timeout and retries of router calls; on failure the small base model "
        "answers (fault 'router').",
    )

    @model_validator(mode="after")
    def _placed_settings(self) -> RouterSettings:
        if self.placement == PLACEMENT_INGRESS:
            _refuse_deployment_fields(self, ("num_cpus", "replicas"))
        return self


def _refuse_deployment_fields(settings: BaseModel, names: tuple[str, ...]) -> None:
    """A part placed in the ingress has no deployment: its deployment's settings would do
    nothing, so one set to anything but its default is an error that names it. (Compared with
    the default, not `model_fields_set`: the replicas get the config as a full dump.)"""
    fields = type(settings).model_fields
    given = [
        name
        for name in names
        if getattr(settings, name) != fields[name].get_default(call_default_factory=True)
    ]
    if given:
        raise ValueError(
            f"{', '.join(given)}: only for placement 'deployment' (placed in the ingress, "
            "this part has no replicas of its own); remove it or set placement: deployment"
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
    placement: Placement | None = Field(
        None,
        description="Where this model's client runs. With remote, 'ingress' (the default): "
        "each ingress replica calls the server itself, no deployment hop; 'deployment': a "
        "Serve deployment of its own (num_cpus, replicas) calls it. An engine always runs in "
        "its deployment: 'deployment' or unset.",
    )
    price: TokenPrice = Field(description="What this model's tokens cost.")
    num_cpus: float = Field(
        0.5,
        gt=0,
        description="CPUs reserved by each replica (not for a remote model's client "
        "placed in the ingress).",
    )
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
    calls: CallSettings = Field(
        default_factory=CallSettings,
        description="Timeout and retries of calls to this model (see docs/cluster.md, Faults).",
    )

    @model_validator(mode="after")
    def _one_backend(self) -> ModelSettings:
        if (self.engine is None) == (self.remote is None):
            raise ValueError("set exactly one of engine (vLLM in Spillway) and remote (a server)")
        engine = self.engine
        if engine is not None and self.num_gpus and self.num_gpus < engine.tensor_parallel_size:
            raise ValueError("num_gpus must be at least engine.tensor_parallel_size")
        if engine is not None and self.placement == PLACEMENT_INGRESS:
            raise ValueError(
                "placement: 'ingress' is for a remote model; an engine runs in its deployment"
            )
        if self.in_ingress:
            _refuse_deployment_fields(self, ("num_cpus", "num_gpus", "resources", "replicas"))
        return self

    @property
    def in_ingress(self) -> bool:
        """Whether the ingress replicas call this model themselves (a remote model's client)."""
        return self.remote is not None and self.placement != PLACEMENT_DEPLOYMENT

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

    spool_file: str | None = Field(
        None,
        description="Write-ahead file holding rows while the database is unavailable (replayed "
        "when it returns, also after a restart); default: <state_dir>/ledger-spool-<hash of "
        "the URL>.jsonl, so each database has its own.",
    )

    journal: bool = Field(
        True,
        description="Make each query's row durable on the ingress host before its response "
        "leaves: an fsync'd, group-committed local journal (a few ms a request), so a killed "
        "ingress process loses no answered query's row; the next ingress started on the "
        "host replays it. false: rows wait in memory for up to 0.2 s before they are written.",
    )
    journal_dir: str | None = Field(
        None,
        description="Directory of the journal (on local disk of each ingress host); default: "
        "<state_dir>/journal-<hash of the URL>, so each database has its own.",
    )

    def resolved_url(self) -> str:
        if self.url_env and os.environ.get(self.url_env):
            return os.environ[self.url_env]
        return self.url

    def spool_path(self, state_dir: str) -> Path:
        """The spool file of this ledger: `spool_file`, else one named after the URL."""
        if self.spool_file:
            return Path(self.spool_file)
        return Path(state_dir) / f"ledger-spool-{self._url_digest()}.jsonl"

    def journal_path(self, state_dir: str) -> Path | None:
        """The journal directory of this ledger, or None when `journal` is off."""
        if not self.journal:
            return None
        if self.journal_dir:
            return Path(self.journal_dir)
        return Path(state_dir) / f"journal-{self._url_digest()}"

    def _url_digest(self) -> str:
        return hashlib.sha256(self.resolved_url().encode()).hexdigest()[:12]


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
