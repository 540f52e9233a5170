"""`spillway serve` stops Serve's HTTP proxies before deleting the application."""

from __future__ import annotations

from typing import Any

import pytest
import ray
import ray.util

from orchestrator.runtime import close_http_proxies


def test_only_proxy_actors_are_killed_without_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    actors = [
        {"name": "SERVE_PROXY_ACTOR-node1", "namespace": "serve"},
        {"name": "SERVE_CONTROLLER_ACTOR", "namespace": "serve"},
        {"name": "SERVE_REPLICA::spillway#Ingress#abc", "namespace": "serve"},
    ]
    killed: list[tuple[str, bool]] = []
    monkeypatch.setattr(ray.util, "list_named_actors", lambda all_namespaces: actors)
    monkeypatch.setattr(ray, "get_actor", lambda name, namespace: f"{namespace}/{name}")

    def kill(actor: Any, no_restart: bool) -> None:
        killed.append((actor, no_restart))

    monkeypatch.setattr(ray, "kill", kill)
    close_http_proxies()
    assert killed == [("serve/SERVE_PROXY_ACTOR-node1", True)]


def test_a_failure_does_not_stop_the_shutdown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(all_namespaces: bool) -> list[dict[str, str]]:
        raise RuntimeError("GCS unreachable")

    monkeypatch.setattr(ray.util, "list_named_actors", broken)
    close_http_proxies()
    assert "could not stop the HTTP proxies first: GCS unreachable" in caplog.text
