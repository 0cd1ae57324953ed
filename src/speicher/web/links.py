"""Share links in the web pages: the creator's list and form, and the public pages a link
opens for anyone who has it (no session).

- ``/links/`` lists the links of the logged-in user (an admin: everyone's) with a revoke
  button; ``/links/new?share=&path=`` is the form the file manager's "Share" leads to; the
  new link's address is shown once, on the answer to that form.
- ``/s/<token>`` is the link: the file with a download button, the folder's listing (its
  sub-folders and files, never above it), or, for an upload link, the upload form (the file
  manager's resumable pieces, ``PUT /s/<token>/<name>``; see ``web/files.py``). A link with a
  password first asks for it; the right one gives the browser a proof (LinkService) in a
  cookie ``__Secure-speicher-link`` scoped to the link's own path, ``HttpOnly``,
  ``SameSite=Strict``, for an hour (renewed while it is used).
- An unknown, expired or revoked link is one and the same 404 page.
- The forms of the public pages (password, upload pieces) carry a token signed with a
  secret of this process for this link, and a same-site ``Origin``, as every state change.

Every rule is LinkService's (``speicher.files.links``); the handlers read the request, call
it in a worker thread and render.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import hashlib
import hmac
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from speicher.errors import NotFound
from speicher.files import FsError
from speicher.files import links as rules
from speicher.files.links import (
    LinkInfo,
    LinkLocked,
    LinkService,
    LinkUpload,
    PasswordNeeded,
    ResolvedLink,
    TooLarge,
    WrongPassword,
)
from speicher.web import files as fm
from speicher.web.forms import Errors, call, page_of, text
from speicher.web.sessions import WebUser

if TYPE_CHECKING:
    from speicher.web.app import WebApp

PREFIXES = ("/links", "/s/")  # the paths of these pages (app.py's is_web)
COOKIE = "__Secure-speicher-link"
MB = 1_000_000  # the form's size limit is in MB, as the pages show sizes
LIST_PAGE = 100  # links per page of /links/

# the form's fields of LinkService's problems
_FIELDS = {"expires_at": "expires", "max_bytes": "max_mb"}
_KNOWN = frozenset({"kind", "password", "expires", "max_mb"})  # the rest: at the top


@dataclasses.dataclass
class _Pending:
    link: ResolvedLink
    name: str
    upload: LinkUpload
    seen: float = dataclasses.field(default_factory=time.monotonic)
    busy: bool = True


class LinkPages:
    def __init__(self, web: WebApp) -> None:
        self.web = web
        services = web.services
        self.links = LinkService(services.db, services.files, services.events)
        self._secret = secrets.token_bytes(32)
        self._pending: dict[tuple[str, str], _Pending] = {}  # (token, upload id) -> upload
        self._lock = threading.Lock()

    # -- what the public pages need ------------------------------------------------------------

    def form_token(self, token: str) -> str:
        """The token of a link's forms (password, upload pieces)."""
        return hmac.new(self._secret, b"link-form:" + token.encode(), hashlib.sha256).hexdigest()

    def form_ok(self, request: Request, token: str, value: str | None) -> bool:
        return (
            self.web.same_site(request)
            and value is not None
            and hmac.compare_digest(value, self.form_token(token))
        )

    def cookie(self, request: Request) -> str:
        return COOKIE if request.url.scheme == "https" else COOKIE.removeprefix("__Secure-")

    def keep_proof(self, request: Request, response: Response, token: str, proof: str) -> None:
        response.set_cookie(
            self.cookie(request),
            proof,
            max_age=int(rules.UNLOCKED.total_seconds()),
            path=f"/s/{token}",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def address(self, request: Request) -> str | None:
        return request.client.host if request.client else None

    async def resolve(
        self, request: Request, token: str, password: str | None = None
    ) -> ResolvedLink:
        proof = request.cookies.get(self.cookie(request))
        link: ResolvedLink = await run_in_threadpool(
            self.links.resolve, token, password, self.address(request), proof
        )
        return link

    def public_render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        response = self.web.render(request, template, None, status, **context)
        response.headers["x-robots-tag"] = "noindex, nofollow"
        return response

    def missing(self, request: Request) -> Response:
        """The one answer for a link that is not there, has expired or was revoked."""
        return self.public_render(request, "link_missing.html", 404, down=False)

    def password_page(
        self, request: Request, token: str, error: str = "", status: int = 200
    ) -> Response:
        return self.public_render(
            request,
            "link_password.html",
            status,
            token=token,
            form_token=self.form_token(token),
            error=error,
        )

    # -- the public pages ----------------------------------------------------------------------

    async def public(self, request: Request) -> Response:
        token = request.path_params["token"]
        rel: str = request.path_params.get("rel", "")
        try:
            link = await self.resolve(request, token)
        except NotFound:
            return self.missing(request)
        except PasswordNeeded:
            return self.password_page(request, token)
        except FsError as exc:
            return self.public_render(request, "link_missing.html", fm.fs_status(exc), down=True)
        try:
            response = await self.show(request, token, link, rel)
        except BaseException:
            link.close()
            raise
        if link.proof:
            self.keep_proof(request, response, token, link.proof)
        return response

    async def show(self, request: Request, token: str, link: ResolvedLink, rel: str) -> Response:
        """The page (or the download) of ``rel`` below ``link``; the link is closed when the
        answer is sent."""
        info = link.info
        if info.kind == "upload":
            link.close()
            if rel.strip("/"):
                return self.missing(request)
            return self.public_render(
                request,
                "link_upload.html",
                info=info,
                token=token,
                form_token=self.form_token(token),
            )
        try:
            target = link.target(rel)
            entry = await run_in_threadpool(link.view.stat, target)
        except FsError:
            link.close()
            return self.missing(request)
        if not entry.is_dir:
            if not link.is_dir and not rel.strip("/"):
                link.close()
                return self.public_render(
                    request, "link_file.html", info=info, entry=entry, token=token
                )
            return await self.web.download(request, link.view, target, entry.size)
        try:
            listing = await run_in_threadpool(
                fm.listing, link.view, target, dict(request.query_params)
            )
        except FsError:
            return self.missing(request)
        finally:
            link.close()
        inside = "/".join(rules.below(rel))
        return self.public_render(
            request,
            "link_folder.html",
            info=info,
            token=token,
            folder=inside,
            crumbs=fm.crumbs(inside),
            listing=listing,
        )

    async def unlock(self, request: Request) -> Response:
        """The password form of a link: the right password gives the browser its proof."""
        token = request.path_params["token"]
        form = await request.form()
        if not self.form_ok(request, token, str(form.get("csrf", ""))):
            return self.password_page(request, token, "expired", 403)
        password = str(form.get("password", ""))
        try:
            link = await self.resolve(request, token, password)
        except NotFound:
            return self.missing(request)
        except (WrongPassword, PasswordNeeded):
            return self.password_page(request, token, "wrong", 401)
        except LinkLocked as exc:
            page = self.password_page(request, token, "locked", 429)
            page.headers["retry-after"] = str(exc.retry_after)
            return page
        except FsError as exc:
            return self.public_render(request, "link_missing.html", fm.fs_status(exc), down=True)
        link.close()
        response = RedirectResponse(f"/s/{token}/", status_code=303)
        if link.proof:
            self.keep_proof(request, response, token, link.proof)
        return response

    async def receive(self, request: Request) -> Response:
        """One piece of a file sent to an upload link (the file manager's protocol)."""
        token = request.path_params["token"]
        name = request.path_params["rel"]
        if not self.form_ok(request, token, request.headers.get("x-csrf-token")):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        renewed: list[str] = []  # a new proof of the password, if the link gave one
        try:
            answer = await self._piece(request, token, name, renewed)
        except NotFound:
            return JSONResponse({"error": rules.GONE}, status_code=404)
        except PasswordNeeded as exc:
            return JSONResponse({"error": exc.message}, status_code=401)
        except TooLarge as exc:
            return JSONResponse({"error": exc.message}, status_code=413)
        except FsError as exc:
            return JSONResponse(
                {"error": exc.message, "code": exc.code}, status_code=fm.fs_status(exc)
            )
        except fm.UploadProblem as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        response = JSONResponse(answer)
        for proof in renewed:
            self.keep_proof(request, response, token, proof)
        return response

    async def _piece(
        self, request: Request, token: str, name: str, renewed: list[str]
    ) -> dict[str, Any]:
        upload_id = request.headers.get("x-upload-id", "")
        if not fm._ID.match(upload_id):
            raise fm.UploadProblem(400, {"error": "X-Upload-Id must be 8-64 letters or digits"})
        offset = _header_int(request, "x-upload-offset")
        total = _header_int(request, "x-upload-total")
        await run_in_threadpool(self.reap)
        key = (token, upload_id)
        try:
            link = await self.resolve(request, token)
        except NotFound:
            await run_in_threadpool(self.drop, key)  # revoked or expired meanwhile
            raise
        if link.proof:
            renewed.append(link.proof)
        try:
            pending = await self._pending_for(key, link, name, offset, total)
        except BaseException:
            link.close()
            raise
        if pending.link is not link:
            link.close()  # the upload keeps the link it started with
        done = False
        try:
            answer = await self._write(request, pending, name, offset, total)
            done = bool(answer["done"])
            return answer
        except (FsError, TooLarge):
            done = True
            raise
        finally:
            if done:
                await run_in_threadpool(self.finish, key, pending)
            else:
                self.release(pending)

    async def _write(
        self, request: Request, pending: _Pending, name: str, offset: int, total: int
    ) -> dict[str, Any]:
        """The piece's bytes into the upload, which is committed after its last byte."""
        if pending.name != name or pending.upload.total != total:
            raise fm.UploadProblem(409, {"error": "another file's upload", "offset": None})
        if offset != pending.upload.size:
            raise fm.UploadProblem(
                409, {"error": "not where the upload is", "offset": pending.upload.size}
            )
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > fm.MAX_PIECE:
                    raise TooLarge("a piece of more than 64 MiB")
                await run_in_threadpool(pending.upload.write, chunk)
        except ClientDisconnect:
            # the bytes that came are kept: the browser goes on from there
            return {"offset": pending.upload.size, "done": False}
        if pending.upload.size < total:
            return {"offset": pending.upload.size, "done": False}
        await run_in_threadpool(pending.upload.commit)
        return {"offset": pending.upload.size, "done": True}

    async def _pending_for(
        self, key: tuple[str, str], link: ResolvedLink, name: str, offset: int, total: int
    ) -> _Pending:
        """The upload of ``key`` (busy now), started at its first piece."""
        pending = self.take(key)
        if pending is not None:
            return pending
        if link.info.kind != "upload":
            raise FsError(errno.EACCES, "a download link takes no files")
        if offset != 0:
            raise fm.UploadProblem(409, {"error": "no such upload; start again", "offset": 0})
        upload = await run_in_threadpool(link.upload, name, total)
        pending = _Pending(link, name, upload)
        with self._lock:
            raced = key in self._pending
            if not raced:
                self._pending[key] = pending
        if raced:  # the same upload's first piece twice at once
            await run_in_threadpool(upload.abort)
            raise fm.UploadProblem(409, {"error": "this upload is busy", "offset": None})
        return pending

    def take(self, key: tuple[str, str]) -> _Pending | None:
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                return None
            if pending.busy:
                raise fm.UploadProblem(409, {"error": "this upload is busy", "offset": None})
            pending.busy = True
            return pending

    def release(self, pending: _Pending) -> None:
        with self._lock:
            pending.busy = False
            pending.seen = time.monotonic()

    def finish(self, key: tuple[str, str], pending: _Pending) -> None:
        """The upload is over (complete or failed): nothing of a failed one stays."""
        with self._lock:
            self._pending.pop(key, None)
        pending.upload.abort()  # nothing when it was committed
        pending.link.close()

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            pending = self._pending.get(key)
            if pending is None or pending.busy:
                return
            del self._pending[key]
        pending.upload.abort()
        pending.link.close()

    def reap(self) -> None:
        """Uploads nobody continued for ``fm.STALE`` go, with their temp files."""
        now = time.monotonic()
        with self._lock:
            stale = [
                (k, p) for k, p in self._pending.items() if not p.busy and now - p.seen > fm.STALE
            ]
            for key, _ in stale:
                del self._pending[key]
        for _, pending in stale:
            pending.upload.abort()
            pending.link.close()

    # -- the creator's pages -------------------------------------------------------------------

    async def list_page(self, request: Request) -> Response:
        user = await self.web.user_of(request)
        if user is None:
            return self.web.to_login(request)
        found = await run_in_threadpool(self.links.list, user.name, user.admin)
        page = page_of(found, request.query_params.get("page"), LIST_PAGE)
        return self.web.render(request, "links.html", user, page=page, where=link_url)

    async def new_page(self, request: Request) -> Response:
        user = await self.web.user_of(request)
        if user is None:
            return self.web.to_login(request)
        query = request.query_params
        return self.form_page(
            request,
            user,
            {
                "share": query.get("share", ""),
                "path": query.get("path", "").strip("/"),
                "folder": query.get("folder", "0"),
            },
            Errors(),
        )

    def form_page(
        self, request: Request, user: WebUser, form: dict[str, str], errors: Errors
    ) -> Response:
        return self.web.render(
            request,
            "link_new.html",
            user,
            422 if errors else 200,
            share=form.get("share", ""),
            link_path=form.get("path", "").strip("/"),
            folder=form.get("folder") == "1",
            form=form,
            errors=errors,
        )

    async def create(self, request: Request) -> Response:
        user, refused = await self.web.checked(request)
        if refused is not None or user is None:
            return refused or self.web.to_login(request)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        errors = Errors()
        expires: dt.datetime | None = None
        if text(form, "expires"):
            try:
                expires = rules.end_of(dt.date.fromisoformat(text(form, "expires")))
            except ValueError:
                errors.add("expires", "must be a date (YYYY-MM-DD)")
        max_bytes: int | None = None
        if text(form, "max_mb"):
            try:
                max_bytes = round(float(text(form, "max_mb").replace(",", ".")) * MB)
            except (ValueError, OverflowError):
                errors.add("max_mb", "must be a number of MB")
        args = (
            user.name,
            text(form, "share"),
            text(form, "path").strip("/"),
            text(form, "kind"),
            form.get("password") or None,
            expires,
            max_bytes,
            self.address(request),
        )
        # with a field that could not be read, the rest is checked too: every problem at once
        action = self.links.validate if errors else self.links.create
        found = Errors()
        made = await run_in_threadpool(call, lambda: action(*args), found, _KNOWN | set(_FIELDS))
        for name, reasons in found.fields.items():
            for reason in reasons:
                errors.add(_FIELDS.get(name, name), reason)
        if errors or made is None:
            return self.form_page(request, user, form, errors)
        info, token = made
        url = f"{request.url.scheme}://{request.url.netloc}/s/{token}"
        return self.web.render(request, "link_made.html", user, info=info, url=url, where=link_url)

    async def revoke(self, request: Request) -> Response:
        user, refused = await self.web.checked(request)
        if refused is not None or user is None:
            return refused or self.web.to_login(request)
        try:
            await run_in_threadpool(
                self.links.revoke, request.path_params["id"], user.name, user.admin
            )
        except NotFound:
            return self.web.render(
                request, "error.html", user, 404, message_key="missing", detail=""
            )
        return RedirectResponse("/links/", status_code=303)


def _header_int(request: Request, name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or len(value) > 18:
        raise fm.UploadProblem(400, {"error": f"{name} must be a number"})
    return int(value)


def routes(web: WebApp) -> list[Route]:
    """The routes of the link pages, for WebApp's app."""
    pages = LinkPages(web)
    return [
        Route("/links/", pages.list_page, methods=["GET"]),
        Route("/links/", pages.create, methods=["POST"]),
        Route("/links/new", pages.new_page, methods=["GET"]),
        Route("/links/{id:int}/revoke", pages.revoke, methods=["POST"]),
        Route("/s/{token}", pages.public, methods=["GET", "HEAD"]),
        Route("/s/{token}", pages.unlock, methods=["POST"]),
        Route("/s/{token}/{rel:path}", pages.public, methods=["GET", "HEAD"]),
        Route("/s/{token}/{rel:path}", pages.receive, methods=["PUT"]),
    ]


def link_url(info: LinkInfo) -> str:
    """The file manager's folder that holds the link's file or folder."""
    parent = info.path.rpartition("/")[0]
    return f"/files/{quote(info.share)}/{quote(parent + '/') if parent else ''}"
