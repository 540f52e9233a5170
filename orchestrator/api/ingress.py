"""`IngressReplica`: one ingress replica's HTTP side over its assembled parts: the FastAPI app,
and with `server.http_server: ingress` the replica's own HTTP server (server.py), started with
the app and drained before the ledger closes. The Serve deployment class that holds it is
`orchestrator.builder.SpillwayIngress`."""

from __future__ import annotations

from fastapi import FastAPI

from orchestrator.api.app import create_app
from orchestrator.api.parts import ReplicaParts
from orchestrator.api.server import ReplicaHTTPServer
from orchestrator.config.settings import HTTP_SERVER_INGRESS

__all__ = ["IngressReplica"]


class IngressReplica:
    def __init__(self, parts: ReplicaParts):
        self.parts = parts
        self._http: ReplicaHTTPServer | None = None
        server = parts.config.server
        if server.http_server == HTTP_SERVER_INGRESS:  # bind now: a taken port fails here
            self._http = ReplicaHTTPServer(server.host, server.port, access_log=server.access_log)

    def build_app(self) -> FastAPI:
        """The app; with our own HTTP server, also start serving it (on the running loop)."""
        app = create_app(self.parts)
        if self._http is not None:
            self._http.start(app)
        return app

    def check_health(self) -> None:
        """Raises when the replica's own HTTP server has died."""
        if self._http is not None:
            self._http.raise_if_stopped()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish and record their rows, then close the
        ledger. A second call does nothing."""
        http, self._http = self._http, None
        try:
            if http is not None:
                await http.stop()
        finally:
            self.parts.close()
