"""The service `bench/load.py` starts: the e2e fixture's `spillway serve` on local.yaml, with
a choice of backend (vLLM engines, optionally bound to given cores, or the instant server)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench import instant_backend
from tests.e2e.conftest import (
    RunningService,
    free_port,
    local_config_data,
    start_service,
    stop_service,
)


def engines_bound_to(cores: str) -> dict[str, Any]:
    """Overrides: local.yaml's small and large models, both engines bound to `cores`."""
    data = local_config_data()
    for name in ("small", "large"):
        data[name]["engine"]["cpu_threads_bind"] = cores
    return {name: data[name] for name in ("small", "large")}


# What a remote model's client placed in the ingress keeps of a shipped model section (it has
# no engine and no deployment: num_cpus, replicas and the like would be refused).
KEPT_MODEL_KEYS = ("price", "calls")


def instant_models(base_url: str, config: Path | None = None) -> dict[str, Any]:
    """Overrides: a shipped config's small and large models (prices included; default
    tiny.yaml's, which match local.yaml's), answered by the instant server at `base_url`
    through the remote backend instead of vLLM engines."""
    data = local_config_data() if config is None else local_config_data(config)
    remotes = instant_backend.remote_configs(base_url)
    overrides: dict[str, Any] = {}
    for name in ("small", "large"):
        section = {key: value for key, value in data[name].items() if key in KEPT_MODEL_KEYS}
        overrides[name] = section | {"remote": remotes[name]}  # no engine: a client in the ingress
    return overrides


@contextmanager
def service_for_load(
    base: dict[str, Any], backend: str, engine_cores: str | None, http_server: str | None = None
) -> Iterator[RunningService]:
    """A running Spillway with the `base` overrides and its own SQLite ledger, stopped (with
    the instant backend, if any) when the block ends. `backend` is 'vllm' or 'instant';
    `http_server`, if given, replaces local.yaml's server.http_server."""
    overrides = dict(base)
    if http_server is not None:
        overrides["server"] = local_config_data()["server"] | {"http_server": http_server}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spillway-load-")))
        if engine_cores is not None:
            overrides |= engines_bound_to(engine_cores)
        if backend == "instant":
            backend_url = stack.enter_context(instant_backend.running(free_port()))
            overrides |= instant_models(backend_url)
        service, proc = start_service(tmp, overrides)
        stack.callback(stop_service, proc)
        yield service
