"""Who may call the API: root over the local Unix socket, admin tokens, admins by HTTP Basic.

Authentication runs as ASGI middleware, before FastAPI reads a request's body, so a caller
without credentials learns nothing (not even whether their JSON was valid): every request
under ``/api/v1`` is answered 401/403/429 before anything else. The ``principal`` dependency
only hands the result to the routes and declares the schemes in the OpenAPI document.

Three defences live here (see ``docs/architecture.md``, "API security"):

- Cross-site requests: a state change (POST, PUT, PATCH, DELETE) from outside the Unix socket
  needs a JSON content type or the header ``X-Speicher-Request``, neither of which a foreign
  web page can send without a CORS preflight we never answer, and a foreign ``Origin`` is
  refused. 401 answers challenge ``Bearer``, never ``Basic``, so browsers do not cache
  passwords for the API.
- Guessing: wrong passwords are counted per client address and per user name
  (:mod:`speicher.access.throttle`); a locked key is answered 429 without checking a password.
- Stalling: an Argon2 check costs 64 MiB and tens of milliseconds, so at most
  ``PASSWORD_CHECKS`` run at once, on their own limiter; when they are busy a password request
  is answered 429 at once. Tokens are a SHA-256 comparison on the shared thread pool, so they
  never wait behind password checks.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated
from urllib.parse import urlsplit

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from speicher.access.models import UserInfo
from speicher.access.throttle import Lockout, Throttle, address_key, user_key
from speicher.api.problems import error_response, problem
from speicher.errors import Forbidden, SpeicherError, Unauthorized
from speicher.services import Services

PROTECTED = "/api/v1"
REQUEST_HEADER = "x-speicher-request"  # any value; the CLI sends "1"
PASSWORD_CHECKS = 2
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# for the OpenAPI document only; the middleware does the checking
_bearer = HTTPBearer(auto_error=False, description="An admin API token: `spk_...`.")
_basic = HTTPBasic(auto_error=False, description="An admin's name and password.")


class TooManyRequests(Exception):
    """Answered 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, math.ceil(retry_after))


def from_socket(services: Services, scope: Scope) -> bool:
    """The socket is mode 0600 in a 0700 directory: only root reaches it."""
    server = scope.get("server")
    return bool(server and server[1] is None and server[0] == str(services.settings.socket_path))


def _origin_matches(origin: str, scheme: str, host: str) -> bool:
    """Whether ``Origin`` names the host the request was sent to. The scheme may differ (a
    proxy that ends TLS), the host and port may not."""
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False  # "null", file://, garbage
    default = _DEFAULT_PORTS[parts.scheme]
    wanted = urlsplit(f"{scheme}://{host}")
    try:
        return (parts.hostname, parts.port or default) == (
            wanted.hostname,
            wanted.port or default,
        )
    except ValueError:
        return False


def cross_site_problem(scope: Scope) -> Forbidden | None:
    """Why a request may have been sent by a foreign web page, or None."""
    if scope["method"] in SAFE_METHODS:
        return None
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    host = headers.get("host", "")
    if origin is not None and not _origin_matches(origin, scope.get("scheme", "http"), host):
        return Forbidden(f"cross-site request refused: Origin {origin!r} is not this server")
    if REQUEST_HEADER in headers:
        return None
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    return Forbidden(
        "a request that changes something needs a JSON body (Content-Type: application/json) "
        "or the header 'X-Speicher-Request: 1'"
    )


def basic_credentials(value: str) -> tuple[str, str]:
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    return user, password


class PasswordLogins:
    """Password logins for every HTTP front end of the daemon (the API and WebDAV): one
    throttle and one cap on concurrent Argon2 checks for all of them, so a client cannot get
    more guesses or more memory by switching between them."""

    def __init__(self, services: Services, throttle: Throttle | None = None) -> None:
        self.services = services
        self.throttle = throttle if throttle is not None else Throttle()  # an empty one is falsy
        self._threads = CapacityLimiter(PASSWORD_CHECKS)
        self._checking = 0  # checks running or waiting; touched only on the event loop

    async def login(
        self,
        user: str,
        password: str,
        address: str | None,
        queue: int = 0,
        hint: str = "",
        protocol: str = "api",
    ) -> UserInfo:
        """The user whose password this is; else Unauthorized, or TooManyRequests when the
        address or user is locked out or more than ``PASSWORD_CHECKS + queue`` checks are
        running or waiting (the API queues none: a third request is answered at once).
        ``hint`` ends the lockout message. Refused logins go to the audit log, with
        ``protocol``; a success is recorded by whoever starts a session with it (a login
        per request, as WebDAV clients and scripts do, would bury the log)."""
        keys = (address_key(address), user_key(user))
        wait = self.throttle.locked(*keys)
        if wait > 0:
            self.services.audit.login(user, protocol, address, ok=False, detail="locked out")
            raise TooManyRequests(
                "too many wrong passwords from this address or for this user; "
                f"try again in {math.ceil(wait)} s{hint}",
                wait,
            )
        if self._checking >= PASSWORD_CHECKS + queue:
            raise TooManyRequests("busy checking other passwords; try again in a moment", 1)
        self._checking += 1
        try:
            info = await to_thread.run_sync(
                self.services.users.authenticate, user, password, limiter=self._threads
            )
        finally:
            self._checking -= 1
        if info is None:
            self.services.audit.login(user, protocol, address, ok=False, detail="wrong password")
            lockouts = self.throttle.failed(*keys)
            if lockouts:
                await to_thread.run_sync(self._record_lockouts, lockouts)
            raise Unauthorized("wrong user name or password")
        self.throttle.succeeded(*keys)
        return info

    def _record_lockouts(self, lockouts: list[Lockout]) -> None:
        for lockout in lockouts:
            kind, _, subject = lockout.key.partition(":")
            wrong, what = "wrong passwords", f"address {subject}"
            if kind == "user":
                what = f"user '{subject}'"
            elif kind == "totp":  # the web login's second step (web/account.py)
                wrong, what = "wrong codes", f"the second factor of user '{subject}'"
            self.services.events.record(
                "warning",
                "auth.lockout",
                subject,
                f"{lockout.failures} {wrong} for {what}; its logins are "
                f"refused for {lockout.seconds:.0f} s",
            )


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        throttle: Throttle | None = None,
        logins: PasswordLogins | None = None,
    ) -> None:
        self.app = app
        self.services = services
        self.logins = logins or PasswordLogins(services, throttle)
        self.throttle = self.logins.throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        try:
            who = await self._authenticate(scope)
        except SpeicherError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except TooManyRequests as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            await problem(429, "Too many requests", exc.message, headers=headers)(
                scope, receive, send
            )
            return
        scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> str:
        """Return who is calling, or raise Unauthorized/Forbidden/TooManyRequests."""
        if from_socket(self.services, scope):
            return "root"
        refused = cross_site_problem(scope)
        if refused:
            raise refused
        scheme, _, value = Headers(scope=scope).get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            name = self.services.tokens.cached(value) or await to_thread.run_sync(
                self.services.tokens.verify, value
            )
            if name is None:
                client = scope.get("client")
                self.services.audit.login(
                    "(token)", "api", client[0] if client else None, ok=False,
                    detail="an API token that is not valid",
                )  # fmt: skip
                raise Unauthorized("the API token is not valid")
            return f"token:{name}"
        if scheme.lower() == "basic" and value:
            user, password = basic_credentials(value)
            client = scope.get("client")
            return await self._password_login(user, password, client[0] if client else None)
        raise Unauthorized(
            "log in with an API token (Bearer) or an admin's name and password (Basic)"
        )

    async def _password_login(self, user: str, password: str, address: str | None) -> str:
        info = await self.logins.login(user, password, address, hint=", or use an API token")
        if not info.admin:
            raise Forbidden(f"user '{user}' is not an administrator")
        return f"user:{user}"


async def principal(
    request: Request,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _basic_credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> str:
    """Who is calling, as the middleware found out."""
    who: str = request.state.principal
    return who
