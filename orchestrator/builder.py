"""build_app(config): the only place that binds Spillway's Serve deployments together."""

from __future__ import annotations

from typing import Any

from orchestrator.config import SpillwayConfig

APP_NAME = "spillway"


def build_app(config: SpillwayConfig) -> Any:
    """Ingress -> Router, Small LLM, Large LLM, composed with deployment handles.

    Every replica asks for a fraction of a CPU: the vLLM engines do their own threading, and a
    replica asking for a whole core can starve the others on a 2-core machine.
    """
    from ray import serve

    from orchestrator.ingress import SpillwayIngress
    from orchestrator.llm import LLMDeployment
    from orchestrator.router import RouterDeployment

    router = serve.deployment(  # type: ignore[attr-defined]
        RouterDeployment,
        name="Router",
        ray_actor_options={"num_cpus": config.router.num_cpus},
        user_config={"artifact_path": config.router.artifact},
    ).bind(
        config.router.artifact,
        max_batch_size=config.router.max_batch_size,
        batch_wait_timeout_s=config.router.batch_wait_timeout_s,
    )
    small = _llm_deployment(serve, LLMDeployment, "SmallLLM", config.small.num_cpus).bind(
        config.small.engine.model_dump(mode="json")
    )
    large = _llm_deployment(serve, LLMDeployment, "LargeLLM", config.large.num_cpus).bind(
        config.large.engine.model_dump(mode="json")
    )
    ingress: Any = serve.deployment(
        serve.ingress()(SpillwayIngress),
        name="Ingress",
        num_replicas=config.server.ingress_replicas,
        ray_actor_options={"num_cpus": config.server.ingress_num_cpus},
        max_ongoing_requests=256,
    )
    return ingress.bind(config.model_dump(mode="json"), router, small, large)


def _llm_deployment(serve: Any, cls: type, name: str, num_cpus: float) -> Any:
    return serve.deployment(
        cls,
        name=name,
        ray_actor_options={"num_cpus": num_cpus},
        max_ongoing_requests=64,
        health_check_period_s=10,
        health_check_timeout_s=60,
        graceful_shutdown_timeout_s=20,
    )
