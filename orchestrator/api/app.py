"""`create_app`: the FastAPI app of one ingress replica, over the parts the builder assembled.
The HTTP layer translates HTTP to calls and results to HTTP; it builds nothing of its own."""

from __future__ import annotations

from fastapi import FastAPI

from orchestrator.api.admin import admin_router
from orchestrator.api.admin_artifact import router_admin_router
from orchestrator.api.admin_cascade import cascade_admin_router
from orchestrator.api.chat import chat_router
from orchestrator.api.errors import install_error_handlers
from orchestrator.api.openapi import install_openapi
from orchestrator.api.parts import ReplicaParts
from orchestrator.api.routes import service_router
from orchestrator.dashboard import dashboard_router
from orchestrator.dashboard.tenants import tenants_router

__all__ = ["create_app"]


def create_app(parts: ReplicaParts) -> FastAPI:
    """The HTTP surface. Every error leaves in OpenAI's error shape."""
    app = FastAPI(title="Spillway", version="0.1.0", docs_url=None, redoc_url=None)
    install_openapi(app)
    install_error_handlers(app)
    # The chat route first: Starlette tries routes in order, and it is the hot one.
    app.include_router(chat_router(parts))
    live = parts.service.live_policy
    app.include_router(
        dashboard_router(parts.stats, authorize=parts.authenticate, policy=lambda: live.policy)
    )
    app.include_router(
        tenants_router(parts.stats, parts.config.tenants, authorize=parts.authenticate)
    )
    app.include_router(service_router(parts))
    app.include_router(admin_router(parts))
    app.include_router(cascade_admin_router(parts))
    app.include_router(router_admin_router(parts))
    return app
