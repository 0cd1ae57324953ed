"""Admin actions into the audit log: every request that changes something (every method but
GET, HEAD and OPTIONS), who made it, what and on which object, and how it ended.

The CLI speaks to the API, so its actions are recorded here too (protocol ``cli``: it sends
``User-Agent: speicher-cli``); the console's forms are recorded by the web app
(``web/app.py``) the same way.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from speicher.services import Services

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def route_of(scope: Scope, prefix: str) -> tuple[str, str]:
    """(``/shares/{name}``, ``finance``): the route's template without ``prefix`` and the
    values of its parameters; the path itself when no route matched."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    params = scope.get("path_params") or {}
    if not isinstance(template, str):
        return scope["path"].removeprefix(prefix) or "/", ""
    subject = "/".join(str(v) for v in params.values())
    return template.removeprefix(prefix) or "/", subject


def outcome_of(status: int) -> str:
    return "ok" if status < 400 else f"failed ({status})"


class AdminTrail:
    def __init__(self, app: ASGIApp, services: Services, prefix: str) -> None:
        self.app = app
        self.services = services
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, subject = route_of(scope, self.prefix)
            who = (scope.get("state") or {}).get("principal", "")
            client = scope.get("client")
            agent = Headers(scope=scope).get("user-agent", "")
            self.services.audit.admin(
                who or "(not logged in)",
                "cli" if agent.startswith("speicher-cli") else "api",
                f"{scope['method']} {route}",
                subject,
                outcome_of(status),
                client[0] if client else None,
            )
