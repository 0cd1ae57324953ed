"""``/metrics`` on the API's ports: who may read it, and the answer in Prometheus's text format.

A scrape is allowed with an admin's API token (``Authorization: Bearer spk_...``, checked as
the API checks it), from a client address in ``metrics_allow``, or over the root-only Unix
socket. Everything else is answered 401 (no or a wrong credential) or 403 (a password: a
scraper every 15 s must not cost an Argon2 check each time) as a problem document, like the
API. The scrape itself runs on a worker thread: it reads the database and runs commands.
"""

from __future__ import annotations

import ipaddress
import logging

from anyio import to_thread
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from speicher.api.auth import from_socket
from speicher.api.problems import error_response, problem
from speicher.errors import Forbidden, OperationFailed, SpeicherError, Unauthorized
from speicher.metrics.collector import SpeicherCollector
from speicher.services import Services

log = logging.getLogger(__name__)

PATH = "/metrics"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed(address: str | None, networks: list[Network]) -> bool:
    """Whether ``address`` is in one of ``networks`` (an IPv4 client of a dual-stack socket,
    ``::ffff:10.0.0.5``, counts as ``10.0.0.5``)."""
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


class Metrics:
    """The ASGI app of ``/metrics``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.networks: list[Network] = [
            ipaddress.ip_network(n, strict=False) for n in services.settings.metrics_allow
        ]
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SpeicherCollector(services))
        self.registry.register(ProcessCollector(registry=None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await problem(405, "Method not allowed", "use GET", headers={"Allow": "GET, HEAD"})(
                scope, receive, send
            )
            return
        try:
            await self._authorize(scope)
        except SpeicherError as exc:
            await error_response(exc)(scope, receive, send)
            return
        try:
            body = await to_thread.run_sync(generate_latest, self.registry)
        except Exception as exc:  # the collector answers per source; this is a last resort
            await error_response(_failed(exc))(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE_LATEST.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _authorize(self, scope: Scope) -> None:
        if from_socket(self.services, scope):
            return
        scheme, _, value = Headers(scope=scope).get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            tokens = self.services.tokens
            name = tokens.cached(value) or await to_thread.run_sync(tokens.verify, value)
            if name is None:
                raise Unauthorized("the API token is not valid")
            return
        client = scope.get("client")
        if allowed(client[0] if client else None, self.networks):
            return
        if scheme.lower() == "basic":
            raise Forbidden("/metrics takes an admin's API token (Bearer), not a password")
        raise Unauthorized(
            "/metrics needs an admin's API token (Bearer) or a client address in metrics_allow"
        )


def _failed(exc: Exception) -> SpeicherError:
    log.error("metrics: the scrape failed", exc_info=exc)
    return OperationFailed("the metrics could not be read; see the daemon's log", str(exc))
