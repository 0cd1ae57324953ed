"""A user's own account page (``/account/``: two-factor login on and off) and the second step
of a login with two factors (``/login/code``).

The second step needs the session the right password made (``second_factor_due``: it opens
nothing else, for five minutes). Wrong codes count in the password throttle under the key
``totp:<user>``, so guessing codes locks out as guessing passwords does, with the same
``auth.lockout`` events. Enrolment shows the secret once (QR code and text) on the answer to
the form, and the recovery codes once on the answer to the confirmation; neither is in a URL,
a cookie or a later page.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import segno
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from speicher.errors import SpeicherError
from speicher.web.forms import Errors, call, local_target, text
from speicher.web.sessions import COOKIE

if TYPE_CHECKING:
    from speicher.web.app import WebApp


class Account:
    def __init__(self, web: WebApp) -> None:
        self.web = web
        self.totp = web.services.totp

    def routes(self) -> list[Route]:
        return [
            Route("/login/code", self.code, methods=["GET", "POST"]),
            Route("/account/", self.account, methods=["GET", "POST"]),
        ]

    # -- the login's second step --------------------------------------------------------------

    async def code(self, request: Request) -> Response:
        web = self.web
        secret = request.cookies.get(web.cookie_name(request, COOKIE))
        user = await run_in_threadpool(web.sessions.pending, secret)
        if user is None or secret is None:
            return RedirectResponse("/login", status_code=303)
        target = local_target(request.query_params.get("next", "/"))
        token_of = user.csrf_token()

        def page(status: int, error: str) -> Response:
            return web.render(
                request, "login_code.html", None, status, next=target, error=error, token=token_of
            )

        if request.method == "GET":
            return page(200, "")
        form = await request.form()
        token = str(form.get("csrf", ""))
        if not web.same_site(request) or not user.csrf_ok(token):
            return web.render(request, "error.html", None, 403, message_key="csrf", detail="")
        throttle = web.logins.throttle
        key = f"totp:{user.name}"
        if throttle.locked(key) > 0:
            locked = page(429, "locked")
            locked.headers["retry-after"] = str(math.ceil(throttle.locked(key)))
            return locked
        right = await run_in_threadpool(self.totp.verify, user.name, str(form.get("code", "")))
        if not right:
            lockouts = throttle.failed(key)
            if lockouts:
                await run_in_threadpool(web.logins._record_lockouts, lockouts)
            return page(401, "wrong")
        throttle.succeeded(key)
        address = request.client.host if request.client else None
        fresh = await run_in_threadpool(web.sessions.complete, secret, address)
        response = RedirectResponse(target, status_code=303)
        web.set_session_cookie(request, response, fresh)
        return response

    async def _act(
        self, name: str, form: dict[str, str], errors: Errors, context: dict[str, Any]
    ) -> Response | None:
        """One of the account page's forms; a redirect, or None to show the page (with what
        ``context`` got: the enrolment's secret, the recovery codes)."""
        action, code = form.get("action", ""), text(form, "code")
        if action == "begin":
            enrolment = await run_in_threadpool(
                call, lambda: self.totp.begin(name), errors, frozenset({"code"})
            )
            if enrolment is not None:
                context["enrolment"] = enrolment
                context["qr"] = segno.make(enrolment.uri, error="m").svg_data_uri(scale=5, border=2)
        elif action == "confirm":
            codes = await run_in_threadpool(
                call, lambda: self.totp.confirm(name, code), errors, frozenset({"code"})
            )
            if codes is not None:
                context["recovery_codes"] = codes
        elif action == "disable":
            if not await run_in_threadpool(self.totp.verify, name, code):
                errors.add("code", "that code is not right")
            else:
                await run_in_threadpool(self.totp.disable, name)
                return RedirectResponse("/account/?done=off", status_code=303)
        else:
            errors.add("", "unknown form")
        return None

    # -- the account page ---------------------------------------------------------------------

    async def account(self, request: Request) -> Response:
        web = self.web
        if request.method == "POST":
            user, refused = await web.checked(request)
            if refused is not None or user is None:
                return refused or web.to_login(request)
        else:
            user = await web.user_of(request)
            if user is None:
                return web.to_login(request)
        errors = Errors()
        context: dict[str, Any] = {}
        if request.method == "POST":
            form = await request.form()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            done = await self._act(user.name, fields, errors, context)
            if done is not None:
                return done
        try:
            enabled = await run_in_threadpool(self.totp.enabled, user.name)
            left = await run_in_threadpool(self.totp.recovery_codes_left, user.name)
        except SpeicherError:
            enabled, left = False, 0
        answer = web.render(
            request,
            "account.html",
            user,
            errors=errors,
            enabled=enabled,
            left=left,
            done=request.query_params.get("done", ""),
            **context,
        )
        if errors:
            answer.status_code = 422
        return answer
