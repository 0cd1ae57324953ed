"""The FastAPI application."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from speicher import __version__
from speicher.api import problems
from speicher.api.auth import AuthMiddleware, PasswordLogins, principal
from speicher.api.cache import FastListings, ListingCache
from speicher.api.routes import (
    access,
    alerts,
    audit,
    backup,
    health,
    protection,
    protocols,
    ransomware,
    replication,
    storage,
    system,
)
from speicher.api.trail import AdminTrail
from speicher.metrics.asgi import counted
from speicher.metrics.counters import ProtocolCounters
from speicher.metrics.endpoint import PATH as METRICS_PATH
from speicher.metrics.endpoint import Metrics
from speicher.protocols.webdav.app import DavApp, is_dav
from speicher.replication.pairing import PEER_PREFIX
from speicher.services import Services
from speicher.tls import CertificateStore
from speicher.web.app import WebApp, is_web

PREFIX = "/api/v1"


class Front:
    """What the daemon serves: the API, with a fast lane in front for a crowd asking for the
    same listings (:class:`FastListings`; bench/api_concurrency.py measures it), and WebDAV
    at ``/dav`` (docs/webdav.md)."""

    def __init__(
        self,
        app: FastAPI,
        fast: FastListings,
        dav: ASGIApp | None = None,
        web: WebApp | None = None,
        metrics: ASGIApp | None = None,
        counters: ProtocolCounters | None = None,
    ) -> None:
        self.app = app
        self.fast = fast
        self.dav = dav
        self.web = web
        self.metrics = metrics
        self.counters = counters or ProtocolCounters()  # WebDAV's and the console's requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.dav is not None and scope["type"] == "http" and is_dav(scope, scope["path"]):
            await counted(self.dav, self.counters, "webdav", scope, receive, send)
        elif self.web is not None and scope["type"] == "http" and is_web(scope["path"]):
            if self._to_https(scope):
                await _redirect_to_https(scope, send, self.web.services.settings.https_port)
            else:
                await counted(self.web, self.counters, "web", scope, receive, send)
        elif self.metrics is not None and scope["type"] == "http" and scope["path"] == METRICS_PATH:
            await self.metrics(scope, receive, send)
        elif not await self.fast.answer(scope, send):
            await self.app(scope, receive, send)

    def _to_https(self, scope: Scope) -> bool:
        """The console over plain HTTP only redirects, unless the admin allowed it for a
        local trial (``console_http``)."""
        assert self.web is not None
        settings = self.web.services.settings
        return scope.get("scheme") != "https" and not settings.console_http


async def _redirect_to_https(scope: Scope, send: Send, port: int) -> None:
    host = Headers(scope=scope).get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not name or any(c in name for c in "/\\@?#") or any(ord(c) < 33 for c in name):
        name = "localhost"
    target = f"https://{name}:{port}{quote(scope['path'])}"
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    await send(
        {
            "type": "http.response.start",
            "status": 308,
            "headers": [(b"location", target.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def serve_app(services: Services, certificates: CertificateStore | None = None) -> Front:
    app = create_app(services, certificates)
    listings = {f"{PREFIX}/pools": "pools", f"{PREFIX}/shares": "shares:"}
    dav = DavApp(services.files, services.db, app.state.logins)
    web = WebApp(services, app.state.logins, app.state.certificates)
    fast = FastListings(app.state.listings, services.tokens.cached, listings)
    return Front(app, fast, dav, web, Metrics(services), services.counters)


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
    app.state.logins = PasswordLogins(services)  # shared with WebDAV: one throttle for both
    app.state.listings = ListingCache()
    app.state.certificates = certificates or CertificateStore(
        services.settings.tls_dir, services.events
    )
    # the last added runs first: authentication, then cached listings, then the routes
    app.add_middleware(AuthMiddleware, services=services, logins=app.state.logins)
    app.add_middleware(AdminTrail, services=services, prefix=PREFIX)  # around the login
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
        replication.router,
        backup.router,
        audit.router,
        ransomware.router,
    )
    for router in routers:
        app.include_router(
            router, prefix=PREFIX, dependencies=auth, responses=problems.PROBLEM_RESPONSES
        )
    app.include_router(
        replication.peer_router, prefix=PEER_PREFIX, responses=problems.PROBLEM_RESPONSES
    )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.document_problem_media_type(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
