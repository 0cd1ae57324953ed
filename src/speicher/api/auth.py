"""Who may call the API: root over the local Unix socket, admin tokens, admins by HTTP Basic.

Authentication runs as ASGI middleware, before FastAPI reads a request's body, so a caller
without credentials learns nothing (not even whether their JSON was valid): every request
under ``/api/v1`` is answered 401/403 before anything else. The ``principal`` dependency
only hands the result to the routes and declares the schemes in the OpenAPI document.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from speicher.api.problems import error_response
from speicher.errors import Forbidden, SpeicherError, Unauthorized
from speicher.services import Services

PROTECTED = "/api/v1"

# for the OpenAPI document only; the middleware does the checking
_bearer = HTTPBearer(auto_error=False, description="An admin API token: `spk_...`.")
_basic = HTTPBasic(auto_error=False, description="An admin's name and password.")


def authenticate(services: Services, scope: Scope) -> str:
    """Return who is calling, or raise Unauthorized/Forbidden."""
    server = scope.get("server")
    if server and server[1] is None and server[0] == str(services.settings.socket_path):
        return "root"  # the socket is mode 0600 in a 0700 directory: only root reaches it
    scheme, _, value = Headers(scope=scope).get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        name = services.tokens.verify(value)
        if name is None:
            raise Unauthorized("the API token is not valid")
        return f"token:{name}"
    if scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        info = services.users.authenticate(user, password)
        if info is None:
            raise Unauthorized("wrong user name or password")
        if not info.admin:
            raise Forbidden(f"user '{user}' is not an administrator")
        return f"user:{user}"
    raise Unauthorized("log in with an API token (Bearer) or an admin's name and password (Basic)")


class AuthMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        try:
            who = await to_thread.run_sync(authenticate, self.services, scope)
        except SpeicherError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)


def principal(
    request: Request,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _basic_credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> str:
    """Who is calling, as the middleware found out."""
    who: str = request.state.principal
    return who
