"""The web console (admins) and the file manager (everyone), server-rendered.

Pages are Jinja2 templates in ``templates/``, in German or English (``i18n.py``), with one
stylesheet and one script of our own in ``static/`` (no CDN, no build chain, no inline
script or style: the Content-Security-Policy forbids both). Every handler is thin: it reads
the form, calls the service layer or ShareFS (in a worker thread) and renders; the rules live
below. Logins share the API's and WebDAV's throttle (``PasswordLogins``), sessions are
``sessions.py``'s, every state change carries the session's CSRF token and a same-site
``Origin``. The file manager opens shares with ShareFS as the logged-in user (protocol
``web``), so it has the permissions and the file events of every other protocol.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import posixpath
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from speicher.api.auth import PasswordLogins, TooManyRequests, _origin_matches
from speicher.api.routes.system import system_status
from speicher.api.trail import SAFE, outcome_of, route_of
from speicher.errors import Unauthorized
from speicher.files import FsError, ShareView
from speicher.services import Services
from speicher.tls import CertificateStore
from speicher.web import files as fm
from speicher.web import i18n, links, live, problems
from speicher.web.account import Account
from speicher.web.console import Console
from speicher.web.console_access import AccessPages
from speicher.web.console_copies import CopiesPages
from speicher.web.forms import Errors, local_target, translated
from speicher.web.sessions import COOKIE, LIFETIME, SessionService, WebUser

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
# logins are recorded as logins (PasswordLogins); the file manager's changes as file events
NOT_TRAILED = ("/login", "/static/", "/files/", "/lang")
LOGIN_COOKIE = "__Host-speicher-login"  # the login form's nonce (CSRF before a session)
PROTOCOL = "web"
VERSIONS_PAGE = 100  # versions of a file per page
# the paths this app answers (Front sends them here)
PREFIXES = (
    "/login",
    "/logout",
    "/console",
    "/files",
    "/static/",
    "/lang",
    "/account",
    *links.PREFIXES,
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def is_web(path: str) -> bool:
    return path == "/" or path.startswith(PREFIXES)


class WebApp:
    """The ASGI app of the console and the file manager."""

    def __init__(
        self, services: Services, logins: PasswordLogins, certificates: CertificateStore
    ) -> None:
        self.services = services
        self.logins = logins
        self.certificates = certificates
        self.sessions = SessionService(services.db)
        self.uploads = fm.Uploads()
        services.preferences.get()  # read once here: pages then format times from memory
        self.envs = {lang: self._environment(lang) for lang in i18n.LANGUAGES}
        self.console = Console(self)
        self.account = Account(self)
        # whether the daemon is stopping (it sets this): live streams end within a tick
        self.exiting: Callable[[], bool] = lambda: False
        self.access_pages = AccessPages(self)
        self.copies_pages = CopiesPages(self)
        routes = [
            *self.console.routes(),
            *self.account.routes(),
            *self.access_pages.routes(),
            *self.copies_pages.routes(),
            Route("/", self.home),
            Route("/lang", self.language),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/console/", self.dashboard),
            Route("/console/jobs.json", self.jobs),
            Route("/console/stream", self.stream),
            Route("/files/", self.shares),
            Route("/files/{share}/{path:path}", self.files, methods=["GET", "HEAD"]),
            Route("/files/{share}/{path:path}", self.change, methods=["POST"]),
            Route("/files/{share}/{path:path}", self.upload, methods=["PUT"]),
            *links.routes(self),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        self.app = Starlette(routes=routes)

    def _environment(self, lang: str) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
        )
        env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
        env.filters["size"] = lambda v: i18n.size(v, lang)
        env.filters["number"] = lambda v: i18n.number(v, lang)
        env.filters["problem"] = lambda v: translated(v, lang)
        preferences = self.services.preferences
        env.filters["when"] = lambda v: i18n.when(v, lang, preferences.tz())
        env.globals["lang"] = lang
        env.globals["languages"] = i18n.LANGUAGES
        return env

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        status = 500

        async def with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", CSP)
                headers.setdefault("x-content-type-options", "nosniff")
                # not no-referrer: under it Chromium sends "Origin: null" with our own forms
                headers.setdefault("referrer-policy", "same-origin")
                headers.setdefault("x-frame-options", "DENY")
                headers.setdefault("cross-origin-opener-policy", "same-origin")
                headers.setdefault("permissions-policy", "camera=(), microphone=(), geolocation=()")
                # pages are never kept; our stylesheet and script are, for an hour (each page
                # would fetch them again otherwise)
                static = scope["path"].startswith("/static/")
                headers.setdefault("cache-control", "max-age=3600" if static else "no-store")
                if https:
                    headers.setdefault("strict-transport-security", "max-age=31536000")
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        finally:
            if scope["method"] not in SAFE and not scope["path"].startswith(NOT_TRAILED):
                await self._trail(scope, status)

    async def _trail(self, scope: Scope, status: int) -> None:
        """A form of the console sent: the audit log (the file manager's changes are file
        events of ShareFS, not here; see NOT_TRAILED)."""
        user = await self.user_of(Request(scope))
        route, subject = route_of(scope, "")
        client = scope.get("client")
        self.services.audit.admin(
            user.name if user else "(not logged in)",
            "console",
            f"{scope['method']} {route}",
            subject,
            outcome_of(status),
            client[0] if client else None,
        )

    # -- what every page needs -----------------------------------------------------------------

    def lang(self, request: Request) -> str:
        return i18n.choose(
            request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
        )

    def render(
        self,
        request: Request,
        template: str,
        user: WebUser | None,
        status: int = 200,
        **context: Any,
    ) -> Response:
        lang = self.lang(request)
        page = self.envs[lang].get_template(template)
        html = page.render(
            user=user,
            csrf=user.csrf_token() if user else "",
            path=request.url.path,
            noerr=Errors(),
            here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
            **context,
        )
        return Response(
            html,
            status_code=status,
            media_type="text/html",
            headers={"content-language": lang, "vary": "Cookie, Accept-Language"},
        )

    def cookie_name(self, request: Request, name: str) -> str:
        """``__Host-`` cookies need HTTPS; over plain HTTP (a local trial the admin allowed)
        the same cookie without the prefix."""
        return name if request.url.scheme == "https" else name.removeprefix("__Host-")

    def set_session_cookie(self, request: Request, response: Response, secret: str) -> None:
        response.set_cookie(
            self.cookie_name(request, COOKIE),
            secret,
            max_age=int(LIFETIME.total_seconds()),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def forget(self, request: Request, response: Response, name: str) -> None:
        """Delete a cookie (with the attributes it was set with: a ``__Host-`` cookie is only
        deleted by a ``Secure`` answer)."""
        response.delete_cookie(
            self.cookie_name(request, name),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    async def user_of(self, request: Request) -> WebUser | None:
        secret = request.cookies.get(self.cookie_name(request, COOKIE))
        if not secret:
            return None
        found: WebUser | None = await run_in_threadpool(self.sessions.lookup, secret)
        return found

    def same_site(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        host = request.headers.get("host", "")
        return origin is None or _origin_matches(origin, request.url.scheme, host)

    async def checked(self, request: Request) -> tuple[WebUser | None, Response | None]:
        """The user of a state-changing request whose session, Origin and CSRF token are
        right; else the answer to give (to the login page, or 403)."""
        user = await self.user_of(request)
        if user is None:
            return None, self.to_login(request)
        token = request.headers.get("x-csrf-token")
        if token is None and request.method == "POST":
            token = str((await request.form()).get("csrf", ""))
        if not self.same_site(request) or not user.csrf_ok(token):
            return None, self.render(
                request, "error.html", user, 403, message_key="csrf", detail=""
            )
        return user, None

    def to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    # -- pages -------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        user = await self.user_of(request)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/console/" if user.admin else "/files/", status_code=303)

    async def language(self, request: Request) -> Response:
        """Switch the language (a cookie the reader asked for), back to where they were."""
        lang = request.query_params.get("to", "")
        back = local_target(request.query_params.get("back", "/"))
        response = RedirectResponse(back, status_code=303)
        if lang in i18n.LANGUAGES:
            response.set_cookie(
                i18n.LANG_COOKIE,
                lang,
                max_age=365 * 86400,
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return response

    async def login_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = self.render(
            request,
            "login.html",
            None,
            status,
            nonce=nonce,
            error=error,
            next=local_target(request.query_params.get("next", "/")),
        )
        response.set_cookie(
            self.cookie_name(request, LOGIN_COOKIE),
            nonce,
            max_age=3600,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        nonce = request.cookies.get(self.cookie_name(request, LOGIN_COOKIE), "")
        if (
            not self.same_site(request)
            or not nonce
            or not secrets.compare_digest(nonce, str(form.get("nonce", "")))
        ):
            return await self.login_page(request, "expired", 403)
        name = str(form.get("user", "")).strip().lower()
        password = str(form.get("password", ""))
        address = request.client.host if request.client else None
        try:
            info = await self.logins.login(name, password, address, queue=4, protocol="console")
        except TooManyRequests:
            return await self.login_page(request, "locked", 429)
        except Unauthorized:
            return await self.login_page(request, "wrong", 401)
        target = local_target(str(form.get("next", "/")))
        second = await run_in_threadpool(self.services.totp.enabled, info.name)
        secret = await run_in_threadpool(self.sessions.create, info.name, address, second)
        if second:  # the code of the user's app next; this session opens nothing else
            target = "/login/code?" + urlencode({"next": target})
        response = RedirectResponse(target, status_code=303)
        self.set_session_cookie(request, response, secret)
        self.forget(request, response, LOGIN_COOKIE)
        detail = "password right; the second factor follows" if second else ""
        self.services.audit.login(info.name, "console", address, ok=True, detail=detail)
        await run_in_threadpool(
            self.services.events.record,
            "info",
            "web.login",
            info.name,
            f"{info.name} logged in to the web console from {address or 'an unknown address'}",
        )
        return response

    async def logout(self, request: Request) -> Response:
        _user, refused = await self.checked(request)
        if refused is not None:
            return refused
        await run_in_threadpool(
            self.sessions.end, request.cookies.get(self.cookie_name(request, COOKIE))
        )
        response = RedirectResponse("/login", status_code=303)
        self.forget(request, response, COOKIE)
        return response

    async def dashboard(self, request: Request) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request)
        if not user.admin:
            return self.render(request, "error.html", user, 403, message_key="admins", detail="")
        system, disks, events = await run_in_threadpool(self._dashboard_data)
        return self.render(
            request, "dashboard.html", user, system=system, disks=disks, events=events
        )

    def _dashboard_data(self) -> tuple[Any, Any, Any]:
        services = self.services
        return system_status(services), services.disks.list(), services.events.list(10)

    async def jobs(self, request: Request) -> Response:
        """The running jobs, for the dashboard's live progress bars (polled by app.js)."""
        user = await self.user_of(request)
        if user is None or not user.admin:
            return JSONResponse({"error": "log in as an admin"}, status_code=403)
        jobs = await run_in_threadpool(self.services.jobs.list, 20)
        recent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        return JSONResponse(
            [
                {
                    "id": j.id,
                    "kind": j.kind,
                    "target": j.target,
                    "state": j.state,
                    "progress": j.progress,
                    "message": problems.reason(j.message, self.lang(request)),
                }
                for j in jobs
                if j.state == "running" or (j.finished_at and j.finished_at > recent)
            ]
        )

    async def stream(self, request: Request) -> Response:
        """The dashboard's live throughput and capacity (server-sent events, ``live.py``)."""
        user = await self.user_of(request)
        if user is None or not user.admin:
            return JSONResponse({"error": "log in as an admin"}, status_code=403)
        return StreamingResponse(
            live.events(self.services, request, self.exiting),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    # -- the file manager ----------------------------------------------------------------------

    async def shares(self, request: Request) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request)
        shares = await run_in_threadpool(self.services.files.shares, user.name, PROTOCOL)
        return self.render(request, "shares.html", user, shares=shares)

    def view(self, user: WebUser, share: str, request: Request) -> ShareView:
        address = request.client.host if request.client else None
        return self.services.files.open(user.name, share, PROTOCOL, address)

    async def files(self, request: Request) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request)
        share = request.path_params["share"]
        path = request.path_params["path"]
        try:
            view = await run_in_threadpool(self.view, user, share, request)
        except FsError as exc:
            return self.fs_error(request, user, exc)
        try:
            entry = await run_in_threadpool(view.stat, path)
            if "versions" in request.query_params:
                before = request.query_params.get("before", "")
                found = await run_in_threadpool(
                    fm.versions_of, view, path, entry, before, VERSIONS_PAGE
                )
                view.close()
                return self.render(
                    request,
                    "versions.html",
                    user,
                    share=share,
                    folder=posixpath.dirname(path.strip("/")),
                    name=posixpath.basename(path.strip("/")),
                    entry=entry,
                    versions=found,
                    older=found[-1][0] if len(found) >= VERSIONS_PAGE else "",
                    writable=view.writable,
                    crumbs=fm.crumbs(path),
                )
            if not entry.is_dir:
                return await self.download(request, view, path, entry.size)
            if "zip" in request.query_params:
                name = posixpath.basename(path.strip("/")) or share
                return StreamingResponse(
                    fm.zip_folder(view, path.strip("/")),
                    media_type="application/zip",
                    headers={
                        "content-disposition": f"attachment; filename*=UTF-8''"
                        f"{quote(name + '.zip', safe='')}",
                        "content-security-policy": "sandbox",
                    },
                )
            listing = await run_in_threadpool(fm.listing, view, path, dict(request.query_params))
        except FsError as exc:
            view.close()
            return self.fs_error(request, user, exc)
        except BaseException:
            view.close()
            raise
        view.close()
        return self.render(
            request,
            "files.html",
            user,
            share=share,
            folder=path.strip("/"),
            crumbs=fm.crumbs(path),
            listing=listing,
            writable=view.writable,
            recycles=view.recycles,
        )

    async def download(self, request: Request, view: ShareView, path: str, size: int) -> Response:
        """A file, whole or the one range asked for; the view closes when it is sent."""
        try:
            file = await run_in_threadpool(view.open_read, path)
        except BaseException:
            view.close()
            raise
        try:
            wanted = fm.byte_range(request.headers.get("range"), size)
        except fm.Unsatisfiable:
            file.close()
            view.close()
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        start, end = wanted if wanted else (0, size)
        name = posixpath.basename(path.rstrip("/"))
        headers = {
            "content-length": str(end - start),
            "accept-ranges": "bytes",
            "content-disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "content-security-policy": "sandbox",
            "last-modified": http_date(file.entry.mtime),
        }
        if wanted:
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"

        async def body() -> AsyncIterator[bytes]:
            try:
                offset = start
                while offset < end:
                    chunk = await run_in_threadpool(file.read, offset, min(1 << 20, end - offset))
                    if not chunk:
                        break
                    offset += len(chunk)
                    yield chunk
            finally:
                file.close()
                view.close()

        if request.method == "HEAD":
            file.close()
            view.close()
            return Response(status_code=206 if wanted else 200, headers=headers)
        return StreamingResponse(
            body(),
            status_code=206 if wanted else 200,
            media_type="application/octet-stream",
            headers=headers,
        )

    async def change(self, request: Request) -> Response:
        """The forms of a folder's page: new folder, rename, delete."""
        user, refused = await self.checked(request)
        if refused is not None or user is None:
            return refused or self.to_login(request)
        share = request.path_params["share"]
        folder = request.path_params["path"].strip("/")
        form = await request.form()
        action = str(form.get("action", ""))
        try:
            view = await run_in_threadpool(self.view, user, share, request)
        except FsError as exc:
            return self.fs_error(request, user, exc)
        try:
            await run_in_threadpool(fm.change, view, folder, action, dict(form))
        except FsError as exc:
            return self.fs_error(request, user, exc)
        except ValueError:
            return self.render(request, "error.html", user, 400, message_key="bad", detail="")
        finally:
            view.close()
        back = f"/files/{quote(share)}/{quote(folder)}{'/' if folder else ''}"
        return RedirectResponse(back, status_code=303)

    async def upload(self, request: Request) -> Response:
        """One piece of a file upload (``fm.Uploads``: resumable, in pieces)."""
        user, refused = await self.checked(request)
        if refused is not None or user is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        share = request.path_params["share"]
        path = request.path_params["path"]
        try:
            answer = await fm.receive_piece(
                self.uploads, lambda: self.view(user, share, request), user.name, request, path
            )
        except FsError as exc:
            return JSONResponse(
                {"error": exc.message, "code": exc.code}, status_code=fm.fs_status(exc)
            )
        except fm.UploadProblem as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        return JSONResponse(answer)

    def fs_error(self, request: Request, user: WebUser, exc: FsError) -> Response:
        return self.render(
            request,
            "error.html",
            user,
            fm.fs_status(exc),
            message_key=fm.fs_key(exc),
            detail=exc.message,
        )


def http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)
