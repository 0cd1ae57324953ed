"""The FastAPI application."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from speicher import __version__
from speicher.api import problems
from speicher.api.auth import AuthMiddleware, principal
from speicher.api.cache import ListingCache
from speicher.api.routes import access, alerts, health, protection, protocols, storage, system
from speicher.services import Services
from speicher.tls import CertificateStore

PREFIX = "/api/v1"


def create_app(services: Services, certificates: CertificateStore | None = None) -> FastAPI:
    # the docs page's scripts are served by us: a NAS is often on a network without internet
    app = FastAPIOffline(
        title="Speicher",
        version=__version__,
        description="Speicher's REST API. Authenticate with an admin token "
        "(`Authorization: Bearer spk_...`, made by `speicher token create`) or with an "
        "admin's name and password (HTTP Basic; wrong passwords are throttled, 429). "
        "Requests that change something need a JSON body or the header "
        "`X-Speicher-Request: 1`. Errors are RFC 9457 problem documents.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        static_url="/api/static",
    )
    app.state.services = services
    app.state.listings = ListingCache()
    app.state.certificates = certificates or CertificateStore(
        services.settings.tls_dir, services.events
    )
    app.add_middleware(AuthMiddleware, services=services)
    problems.install(app)
    auth = [Depends(principal)]
    routers = (
        storage.router,
        access.router,
        protocols.router,
        protection.router,
        health.router,
        alerts.router,
        system.router,
    )
    for router in routers:
        app.include_router(
            router, prefix=PREFIX, dependencies=auth, responses=problems.PROBLEM_RESPONSES
        )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.document_problem_media_type(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
