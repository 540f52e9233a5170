"""Start and stop Spillway on a local Ray instance (the CLI and the integration tests use it)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.config import SpillwayConfig
from orchestrator.config.settings import HTTP_SERVER_INGRESS

log = logging.getLogger("spillway")

# Unix socket paths are limited to 107 bytes and Ray's session dirs are long.
_MAX_RAY_TMP_LEN = 48
# Ray Serve's name for its HTTP proxy actors (ray.serve._private.constants.SERVE_PROXY_NAME).
_SERVE_PROXY_PREFIX = "SERVE_PROXY_ACTOR"


def runtime_env_vars(config: SpillwayConfig) -> dict[str, str]:
    """Environment every Spillway process needs here: offline hub, loopback, shared caches.

    The compile caches live in the state dir and outlive runs: a fresh machine's first
    generate compiles CPU kernels for ~15 s, later runs reuse them."""
    state = Path(config.server.state_dir)
    cache = state / "cache"
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        # read when Ray Serve is imported, in every Ray process: set before ray.init
        "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1" if config.server.grpc_data_plane else "0",
        # Ray's C++ core otherwise takes over SIGTERM in every Ray process, the driver
        # included: it prints a stack and aborts (exit 134) instead of letting the process
        # stop cleanly. Stops are ours to handle (runtime/signals.py).
        "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1",
        # vLLM's own logging setup (logging.config.dictConfig) closes every existing handler,
        # Serve's replica log handlers included; a restarted Serve controller then fails to
        # take the engine replicas over (AttributeError in is_allocated) and replaces them.
        "VLLM_CONFIGURE_LOGGING": "0",
    }


def apply_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        os.environ.setdefault(key, value)


def ray_temp_dir(config: SpillwayConfig) -> str:
    candidate = Path(config.server.state_dir) / "ray"
    if len(str(candidate)) > _MAX_RAY_TMP_LEN:
        candidate = Path(tempfile.gettempdir()) / f"spillway-ray-{os.getuid()}"
    candidate.mkdir(parents=True, exist_ok=True)
    return str(candidate)


def check_local_files(config: SpillwayConfig) -> list[str]:
    """Files the config points at that are missing, with the command that makes them."""
    engines = [m.engine for m in (config.small, config.large) if m.engine is not None]
    paths = [config.router.artifact]
    paths += [path for engine in engines for path in engine.adapters.values()]
    paths += [engine.model for engine in engines if engine.model.startswith("/")]
    return [path for path in paths if not Path(path).exists()]


def start(config: SpillwayConfig, after_ray_init: Callable[[], None] | None = None) -> Any:
    """Start local Ray and Serve, deploy the application and wait until it is running.

    `after_ray_init` runs as soon as Ray is up: `ray.init` replaces the process's SIGTERM
    handler, and the CLI puts its own back there."""
    init_ray(config)
    if after_ray_init is not None:
        after_ray_init()
    return deploy(config)


def init_ray(config: SpillwayConfig) -> None:
    """Start a local Ray instance with the environment every Spillway process needs."""
    env = runtime_env_vars(config)
    apply_env(env)  # before Ray Serve's first import here: it reads RAY_SERVE_* then

    import ray

    for key in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    ray.init(
        num_cpus=config.server.num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",  # keep Ray's own traffic on loopback
        _temp_dir=ray_temp_dir(config),
        runtime_env={"env_vars": env},
        logging_level=logging.WARNING,
        configure_logging=True,
    )


def deploy(config: SpillwayConfig) -> Any:
    """Start Serve on the running Ray and deploy the application; returns its handle once
    every deployment is running."""
    from ray import serve

    from orchestrator.builder import APP_NAME, build_app, serve_logging

    # Build first: from the moment the proxy listens until the app's routes reach it, Serve
    # answers a plain-text 404; deploying right after serve.start keeps that window short.
    app = build_app(config)
    serve.start(
        proxy_location=serve_proxy_location(config),
        http_options={"host": config.server.host, "port": config.server.port},
        logging_config=serve_logging(config),
    )
    return serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)


def with_address(config: SpillwayConfig, host: str | None, port: int | None) -> SpillwayConfig:
    """The config with `spillway serve --host/--port` applied (the ingress replicas read the
    address from the config when they serve HTTP themselves)."""
    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if not update:
        return config
    return config.model_copy(update={"server": config.server.model_copy(update=update)})


def serve_proxy_location(config: SpillwayConfig) -> str | None:
    """Serve's proxies: none when the ingress replicas answer HTTP themselves, else Serve's
    default placement."""
    return "Disabled" if config.server.http_server == HTTP_SERVER_INGRESS else None


def stop() -> None:
    """Close the HTTP port, delete the application, stop Serve and Ray (and with them every
    engine process)."""
    import ray

    if not ray.is_initialized():  # stopped while Ray was starting: serve.shutdown would start it
        ray.shutdown()  # stops the node processes already started, if any
        return
    from ray import serve

    try:
        close_http_proxies()
        serve.shutdown()
    finally:
        ray.shutdown()


def close_http_proxies() -> None:
    """Stop Serve's HTTP proxies before the application is deleted.

    Otherwise a proxy outlives the application's routes for the seconds the engines take to
    stop and answers new requests with a plain-text 404 ("Path ... not found"), which clients
    take for a wrong URL; a closed port is a refused connection, which they retry. Requests
    still in flight are cut off either way."""
    import ray

    try:
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["name"].startswith(_SERVE_PROXY_PREFIX):
                actor = ray.get_actor(entry["name"], namespace=entry["namespace"])
                ray.kill(actor, no_restart=True)
    except Exception as error:  # stopping must go on; the 404s are the only cost
        log.warning("could not stop the HTTP proxies first: %s", error)
