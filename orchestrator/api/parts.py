"""`ReplicaParts`: the objects one ingress replica serves with, assembled by the builder
(`orchestrator.builder.build_replica`) and handed to the HTTP layer, which builds none."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from orchestrator.config import SpillwayConfig, TenantSettings
from orchestrator.dashboard import StatsSource
from orchestrator.ledger import Ledger
from orchestrator.query.admission import Admission, KeyTable
from orchestrator.query.service import QueryService
from orchestrator.query.trace import QueryRecorder

__all__ = ["ReplicaParts", "bearer_key"]


@dataclass(frozen=True)
class ReplicaParts:
    """One ledger and one stats source per replica, shared by every route."""

    config: SpillwayConfig
    keys: KeyTable
    admission: Admission
    service: QueryService
    recorder: QueryRecorder
    ledger: Ledger
    stats: StatsSource

    def authenticate(self, request: Request) -> TenantSettings:
        """The caller's tenant from its bearer key; 401 when missing or unknown."""
        return self.keys.tenant(bearer_key(request))

    def close(self) -> None:
        """Close what the replica opened: the ledger (its queued rows are written), the stats
        source's database engine and the backends held in process (router thread, clients)."""
        try:
            self.ledger.close()
        finally:
            self.stats.close()
            close_backends = self.service.backends.close
            if close_backends is not None:
                close_backends()


def bearer_key(request: Request) -> str:
    """The key of an `Authorization: Bearer <key>` header, or '' when there is none."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key if scheme.lower() == "bearer" else ""
