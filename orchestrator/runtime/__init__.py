"""Run Spillway on a local Ray instance (the CLI, the benchmarks and the tests use it):
start Ray and Serve and deploy (`ray_local`), own every process the run starts
(`processes`), and turn SIGINT/SIGTERM at any moment into one clean stop (`signals`)."""

from orchestrator.runtime.ray_local import (
    apply_env,
    check_local_files,
    close_http_proxies,
    deploy,
    init_ray,
    ray_temp_dir,
    runtime_env_vars,
    serve_proxy_location,
    start,
    stop,
    with_address,
)

__all__ = [
    "apply_env",
    "check_local_files",
    "close_http_proxies",
    "deploy",
    "init_ray",
    "ray_temp_dir",
    "runtime_env_vars",
    "serve_proxy_location",
    "start",
    "stop",
    "with_address",
]
