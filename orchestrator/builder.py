"""The one place that assembles Spillway.

- `build_app(config)` binds the Serve deployments: Ingress -> Router, SmallLLM, LargeLLM; a
  part placed in the ingress (`router.placement`, a remote model's `placement`) has no
  deployment and each ingress replica holds it (`replica_backends`).
- `build_replica(config, backends)` makes one ingress replica's objects (one ledger, one stats
  source, the key table, admission, the query service and the recorder) and hands them to the
  HTTP layer as `ReplicaParts`; `SpillwayIngress` is the deployment class that does so on
  each replica.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from orchestrator.api.ingress import IngressReplica
from orchestrator.api.parts import ReplicaParts
from orchestrator.api.priority import set_process_niceness
from orchestrator.backends.router_swap import check_artifact_labels
from orchestrator.backends.seam import (
    Backends,
    ModelCalls,
    compose_backends,
    model_handle_calls,
    model_local_calls,
    router_handle_calls,
    router_local_calls,
)
from orchestrator.config import (
    SpillwayConfig,
    adapter_label_entries,
    load_config,
    validate_cascade,
)
from orchestrator.config.settings import PLACEMENT_DEPLOYMENT, ModelSettings
from orchestrator.dashboard import StatsSource
from orchestrator.dashboard.stats_tenants import spend_reader
from orchestrator.ledger import Ledger
from orchestrator.query.admission import Admission, KeyTable
from orchestrator.query.live_policy import SOURCE_USER_CONFIG
from orchestrator.query.service import QueryService
from orchestrator.query.trace import QueryRecorder

if TYPE_CHECKING:  # loaded in the replica only when the router runs there
    from orchestrator.backends.router_local import LocalRouter

APP_NAME = "spillway"
# Serve kills an ingress replica this long after asking it to stop: time for the requests in
# flight to finish (replica_http.DRAIN_S when the replica serves HTTP itself) and the ledger to
# write their rows.
INGRESS_SHUTDOWN_S = 40
ROUTER_ARTIFACT_KEY = "router_artifact_path"  # the Ingress user_config key of a live swap
CASCADE_KEY = "cascade"  # the Ingress user_config key of a replacement cascade policy


def build_app(config: SpillwayConfig) -> Any:
    """Ingress -> Router, Small LLM, Large LLM, composed with deployment handles; the parts
    placed in the ingress get no deployment (None is bound in their place), and with the
    router there the Ingress's user_config carries the artifact path for live swaps.

    Every replica asks for a fraction of a CPU: the vLLM engines do their own threading, and a
    replica asking for a whole core can starve the others on a 2-core machine.
    """
    from ray import serve

    logs = serve_logging(config)
    router = None
    if config.router.placement == PLACEMENT_DEPLOYMENT:
        router = _router_deployment(serve, config, logs)
    # Only the small model's adapters are managed at run time (the adapter registry).
    small = None
    if not config.small.in_ingress:
        small = _model_deployment(serve, "SmallLLM", config.small, logs, config.server.state_dir)
    large = (
        None
        if config.large.in_ingress
        else _model_deployment(serve, "LargeLLM", config.large, logs)
    )
    swap: dict[str, Any] = {}
    if router is None:
        swap["user_config"] = {ROUTER_ARTIFACT_KEY: config.router.artifact}
    ingress: Any = serve.deployment(
        serve.ingress()(SpillwayIngress),
        name="Ingress",
        logging_config=logs,
        ray_actor_options={"num_cpus": config.server.ingress_num_cpus},
        max_ongoing_requests=256,
        graceful_shutdown_timeout_s=INGRESS_SHUTDOWN_S,
        **swap,
        **_ingress_scaling(config),
    )
    return ingress.bind(config.model_dump(mode="json"), router, small, large)


def _router_deployment(serve: Any, config: SpillwayConfig, logs: dict[str, Any]) -> Any:
    """The Router deployment (`router.placement: deployment`), swapped via its user_config."""
    from orchestrator.backends.router import RouterDeployment

    settings = config.router
    return serve.deployment(
        RouterDeployment,
        name="Router",
        logging_config=logs,
        ray_actor_options={"num_cpus": settings.num_cpus},
        user_config={"artifact_path": settings.artifact},
        **settings.replicas.serve_options(),
    ).bind(
        settings.artifact,
        max_batch_size=settings.max_batch_size,
        batch_wait_timeout_s=settings.batch_wait_timeout_s,
        difficulty_path=settings.difficulty_artifact,
        adapter_labels=adapter_label_entries(config),
    )


def serve_logging(config: SpillwayConfig) -> dict[str, Any]:
    """Serve's logging_config for the proxy and every deployment."""
    return {"enable_access_log": config.server.access_log}


def _ingress_scaling(config: SpillwayConfig) -> dict[str, Any]:
    autoscaling = config.server.ingress_autoscaling
    if autoscaling is not None:
        return {"autoscaling_config": autoscaling.serve_options()}
    return {"num_replicas": config.server.ingress_replicas}


def _model_deployment(
    serve: Any,
    name: str,
    model: ModelSettings,
    logs: dict[str, Any],
    registry_dir: str | None = None,
) -> Any:
    """A vLLM engine inside the replica, or a client of a server that runs the model."""
    from orchestrator.backends.llm import ServedLLMDeployment  # imports vLLM: only when building
    from orchestrator.backends.remote import RemoteLLMDeployment

    backend: type = ServedLLMDeployment if model.engine is not None else RemoteLLMDeployment
    backend_config = model.engine if model.engine is not None else model.remote
    assert backend_config is not None
    actor_options: dict[str, Any] = {"num_cpus": model.num_cpus, "num_gpus": model.num_gpus}
    if model.resources:
        actor_options["resources"] = dict(model.resources)
    deployment = serve.deployment(
        backend,
        name=name,
        logging_config=logs,
        ray_actor_options=actor_options,
        health_check_period_s=10,
        health_check_timeout_s=60,
        graceful_shutdown_timeout_s=20,
        **model.replicas.serve_options(),
    )
    if model.engine is not None and registry_dir is not None:
        return deployment.bind(backend_config.model_dump(mode="json"), None, registry_dir)
    return deployment.bind(backend_config.model_dump(mode="json"))


def app_builder(args: dict[str, Any]) -> Any:
    """Entry point for Serve config files and KubeRay (`import_path:
    orchestrator.builder:app_builder`, `args: {config: /etc/spillway/production.yaml}`).

    `revision` is accepted and ignored: bumping it makes Serve redeploy after the mounted
    config file changed."""
    unknown = set(args) - {"config", "revision"}
    if unknown:
        raise ValueError(f"unknown app_builder args: {', '.join(sorted(unknown))}")
    if "config" not in args:
        raise ValueError("app_builder needs args.config: the path of a Spillway YAML config")
    return build_app(load_config(args["config"]))


def replica_backends(
    config: SpillwayConfig, router: Any, small: Any, large: Any
) -> tuple[Backends, LocalRouter | None]:
    """One ingress replica's backends: a deployment handle where one was bound, else the part
    in this process (the router loaded here; a remote model's HTTP client). Also returns the
    in-process router, if any, for live swaps."""
    local_router = None
    if router is None:
        from orchestrator.backends.router_local import LocalRouter

        settings = config.router
        local_router = LocalRouter(
            settings.artifact,
            settings.max_batch_size,
            settings.batch_wait_timeout_s,
            difficulty_path=settings.difficulty_artifact,
        )
    router_calls = (
        router_handle_calls(router) if local_router is None else router_local_calls(local_router)
    )
    backends = compose_backends(
        router_calls, _model_calls(config.small, small), _model_calls(config.large, large)
    )
    return backends, local_router


def _model_calls(settings: ModelSettings, handle: Any) -> ModelCalls:
    if handle is not None:
        return model_handle_calls(handle)
    from orchestrator.backends.remote import RemoteLLMDeployment

    assert settings.remote is not None  # only remote models are placed in the ingress
    return model_local_calls(RemoteLLMDeployment(settings.remote))


def build_replica(config: SpillwayConfig, backends: Backends) -> ReplicaParts:
    """One ingress replica's objects, with a started ledger that keeps serving through a
    database outage (rows spool to the state directory until it is back) and, with
    `ledger.journal`, journals each row before its response leaves."""
    state_dir = config.server.state_dir
    ledger = Ledger(
        config.ledger.resolved_url(),
        spool_path=config.ledger.spool_path(state_dir),  # one per database
        journal_dir=config.ledger.journal_path(state_dir),
    )
    ledger.start(require_database=False)
    return assemble_replica(config, backends, ledger)


def assemble_replica(config: SpillwayConfig, backends: Backends, ledger: Ledger) -> ReplicaParts:
    """The replica's objects around a ledger the caller made (tests pass their own)."""
    stats = StatsSource(config.ledger.resolved_url())
    admission = Admission(config.tenants, spend_reader(stats))
    service = QueryService(config, backends)
    return ReplicaParts(
        config=config,
        keys=KeyTable(config.tenant_by_key_digest()),
        admission=admission,
        service=service,
        recorder=QueryRecorder(ledger, admission, service.settle),
        ledger=ledger,
        stats=stats,
    )


async def apply_user_config(
    parts: ReplicaParts, router: LocalRouter | None, user_config: dict[str, Any]
) -> None:
    """The Ingress user_config on one replica's parts: validate all, then swap (see
    `SpillwayIngress.reconfigure`)."""
    cascade = user_config.get(CASCADE_KEY)
    policy = None if cascade is None else validate_cascade(cascade, parts.config.router)
    path = user_config.get(ROUTER_ARTIFACT_KEY)
    if path is not None and router is not None and str(path) != router.artifact_path:
        check_artifact_labels(parts.config, str(path))  # the admin API's check, same message
        await router.swap(str(path))
    if policy is not None:
        parts.service.live_policy.replace(policy, SOURCE_USER_CONFIG)


class SpillwayIngress:
    """The Serve ingress deployment: one `IngressReplica` over `build_replica`'s parts, with
    handles to the router and both models, or (None bound) those parts in this replica.

    `build_app` wraps it with `serve.ingress()` and `serve.deployment`; the FastAPI app is
    built on the replica (`__serve_build_asgi_app__`), so nothing is pickled but the config.
    With `server.http_server: ingress` the replica also serves that app over HTTP itself
    (orchestrator/api/server.py) and Serve's proxy is not started.
    """

    def __init__(self, config_data: dict[str, Any], router: Any, small: Any, large: Any):
        config = SpillwayConfig.model_validate(config_data)
        if config.server.ingress_niceness is not None:  # Ray started this worker at 15
            set_process_niceness(config.server.ingress_niceness)
        backends, self._router = replica_backends(config, router, small, large)
        self._replica = IngressReplica(build_replica(config, backends))

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve calls this with the Ingress deployment's user_config (at start and on each
        change), on every replica; nothing restarts. A new `router_artifact_path` is loaded,
        validated and swapped in; a `cascade` section is validated as the config's and then
        replaces the policy in force (`orchestrator.query.live_policy`). Anything bad raises
        before either changes, the current ones stay and Serve reports the failed update.
        Without a `cascade` key the policy in force stays (the config's, or the last one)."""
        await apply_user_config(self._replica.parts, self._router, user_config)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Serve on the replica's event loop, after the constructor."""
        return self._replica.build_app()

    async def check_health(self) -> None:
        self._replica.check_health()

    async def __del__(self) -> None:
        """Serve awaits this when the replica stops (its ingress wrapper awaits an async
        `__del__` of ours): with our own HTTP server, requests in flight finish and record
        their rows before the ledger closes."""
        replica = getattr(self, "_replica", None)
        if replica is not None:
            await replica.stop()
