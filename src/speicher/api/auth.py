"""Who may call the API: root over the local Unix socket, admin tokens, admins by HTTP Basic."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from speicher.errors import Forbidden, Unauthorized
from speicher.services import Services


def principal(request: Request) -> str:
    """Return who is calling, or raise 401/403. Used as a dependency on every route."""
    services: Services = request.app.state.services
    server = request.scope.get("server")
    if server and server[1] is None and server[0] == str(services.settings.socket_path):
        return "root"  # the socket is mode 0600 in a 0700 directory: only root reaches it
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        name = services.tokens.verify(value.strip())
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
