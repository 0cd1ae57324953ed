"""The console's access pages (admins): groups and their members, a user's SSH keys (SFTP) and
S3 keys, and the API tokens. Built like the other management pages (``Console._page``): a GET
shows the state and its forms, a POST per form calls one service and goes back to the page
(303, with a ``done`` note) or shows it again with every problem next to its field (422).

Two forms make a secret that is shown once: a new S3 key's secret and a new API token. Their
answer is the page itself (200), the secret in it, rendered from the service's answer and
kept nowhere: not in a URL, not in a cookie, not in a redirect a reload would show again.
The pages are ``no-store`` like every page of the console, so no cache keeps them either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from speicher.access.models import GroupCreate, KeyAdd, TokenCreate
from speicher.errors import NotFound
from speicher.web.console import Console
from speicher.web.forms import Errors, call, page_of, text
from speicher.web.sessions import WebUser

USERS_PAGE = 100  # users per page of the keys' index
Handler = Callable[[dict[str, Any], Errors], Any]


class AccessPages(Console):
    """The access pages, with ``Console``'s frame (admins only, CSRF, 303 and 422); made
    like it, ``AccessPages(web)``, and only its own routes."""

    def routes(self) -> list[Route]:
        return [
            Route("/console/groups/", self.groups, methods=["GET", "POST"]),
            Route("/console/users/keys/", self.keys_index, methods=["GET"]),
            Route("/console/users/{name}/keys/", self.keys, methods=["GET", "POST"]),
            Route("/console/tokens/", self.tokens, methods=["GET", "POST"]),
        ]

    # -- a page with forms that make a secret -------------------------------------------------

    async def _page_once(
        self,
        request: Request,
        handlers: dict[str, Handler],
        once: dict[str, Handler],
        show: Callable[..., Any],
    ) -> Response:
        """``Console._page``, where the forms of ``once`` make something shown this once:
        their answer is the page (200) with what the handler returned as ``made``, or the
        page with the form's problems (422) and nothing made."""
        if request.method == "POST":
            action = (await request.form()).get("action", "")  # parsed once, kept by starlette
            make = once.get(action) if isinstance(action, str) else None
            if make is not None:
                return await self._made(request, make, show)
        return await self._page(request, handlers, show)

    async def _made(self, request: Request, make: Handler, show: Callable[..., Any]) -> Response:
        user, refused = await self._admin(request)
        if refused is not None or user is None:
            return refused or self.web.to_login(request)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        form["_admin"] = user.name  # who acts: the session's, never the form's
        errors = Errors()
        made = await run_in_threadpool(make, form, errors)
        page: Response = await show(request, user, errors, form, made=None if errors else made)
        page.status_code = 422 if errors else 200
        return page

    # -- groups -------------------------------------------------------------------------------

    async def groups(self, request: Request) -> Response:
        return await self._page(
            request,
            {
                "create": self._create_group,
                "delete": self._delete_group,
                "add-member": self._add_member,
                "remove-member": self._remove_member,
            },
            self._show_groups,
        )

    async def _show_groups(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        groups, users, shares = await run_in_threadpool(
            lambda: (
                self.services.groups.list(),
                self.services.users.list(),
                self.services.shares.list(),
            )
        )
        access: dict[str, list[tuple[str, str]]] = {g.name: [] for g in groups}
        for share in shares:
            for grant in share.grants:
                if grant.principal == "group" and grant.name in access:
                    access[grant.name].append((share.name, grant.access))
        return self.web.render(
            request,
            "console_groups.html",
            user,
            errors=errors,
            form=form,
            groups=groups,
            access=access,
            people=[u for u in users if u.file_access],  # only they can be members
            done=request.query_params.get("done", ""),
        )

    def _create_group(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {"name": text(form, "name"), "description": text(form, "description")}
        self._do(GroupCreate, data, errors, self.services.groups.create)
        return "group"

    def _delete_group(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.groups.delete(text(form, "group")), errors, frozenset())
        return "group-deleted"

    def _add_member(self, form: dict[str, Any], errors: Errors) -> str | None:
        group, member = text(form, "group"), text(form, "user")
        if not member:
            errors.add("user", "choose a user")
            return None
        add = self.services.groups.add_member
        call(lambda: add(group, member), errors, frozenset({"user"}))
        return "member-added"

    def _remove_member(self, form: dict[str, Any], errors: Errors) -> str | None:
        group, member = text(form, "group"), text(form, "user")
        remove = self.services.groups.remove_member
        call(lambda: remove(group, member), errors, frozenset())
        return "member-removed"

    # -- a user's SSH and S3 keys -------------------------------------------------------------

    async def keys_index(self, request: Request) -> Response:
        """Whose keys: every user, each a link to their keys' page (``?user=NAME`` goes
        straight there)."""
        user, refused = await self._admin(request)
        if refused is not None or user is None:
            return refused or self.web.to_login(request)
        wanted = request.query_params.get("user", "").strip()
        if wanted:
            return RedirectResponse(
                f"/console/users/{quote(wanted, safe='')}/keys/", status_code=303
            )
        return await self._show_index(request, user, Errors(), 200)

    async def _show_index(
        self, request: Request, user: WebUser, errors: Errors, status: int
    ) -> Response:
        users = await run_in_threadpool(self.services.users.list)
        return self.web.render(
            request,
            "console_keys.html",
            user,
            status,
            errors=errors,
            form={},
            person=None,
            page=page_of(users, request.query_params.get("page"), USERS_PAGE),
            done="",
        )

    async def keys(self, request: Request) -> Response:
        name = request.path_params["name"]
        return await self._page_once(
            request,
            {
                "add-key": lambda f, e: self._add_key(name, f, e),
                "remove-key": lambda f, e: self._remove_key(name, f, e),
                "delete-s3-key": lambda f, e: self._delete_s3_key(name, f, e),
            },
            {"create-s3-key": lambda f, e: self._create_s3_key(name, f, e)},
            self._show_keys,
        )

    async def _show_keys(
        self,
        request: Request,
        user: WebUser,
        errors: Errors,
        form: dict[str, Any],
        made: Any = None,
    ) -> Response:
        name = request.path_params["name"]

        def load() -> tuple[Any, Any, Any]:
            services = self.services
            return services.users.get(name), services.keys.list(name), services.s3_keys.list(name)

        try:
            person, ssh_keys, s3_keys = await run_in_threadpool(load)
        except NotFound as exc:
            missing = Errors()
            missing.add("", exc.message)
            return await self._show_index(request, user, missing, 404)
        return self.web.render(
            request,
            "console_keys.html",
            user,
            errors=errors,
            form=form,
            person=person,
            ssh_keys=ssh_keys,
            s3_keys=s3_keys,
            made=made,
            done=request.query_params.get("done", ""),
        )

    def _add_key(self, name: str, form: dict[str, Any], errors: Errors) -> str | None:
        data = {"key": form.get("key", "")}
        self._do(KeyAdd, data, errors, lambda r: self.services.keys.add(name, r.key))
        return "key-added"

    def _remove_key(self, name: str, form: dict[str, Any], errors: Errors) -> str | None:
        fingerprint = text(form, "fingerprint")
        call(lambda: self.services.keys.remove(name, fingerprint), errors, frozenset())
        return "key-removed"

    def _create_s3_key(self, name: str, form: dict[str, Any], errors: Errors) -> Any:
        return call(lambda: self.services.s3_keys.create(name), errors, frozenset())

    def _delete_s3_key(self, name: str, form: dict[str, Any], errors: Errors) -> str | None:
        access_key = text(form, "access_key")
        call(lambda: self.services.s3_keys.delete(name, access_key), errors, frozenset())
        return "s3-key-deleted"

    # -- API tokens ---------------------------------------------------------------------------

    async def tokens(self, request: Request) -> Response:
        return await self._page_once(
            request,
            {"delete": self._delete_token},
            {"create": self._create_token},
            self._show_tokens,
        )

    async def _show_tokens(
        self,
        request: Request,
        user: WebUser,
        errors: Errors,
        form: dict[str, Any],
        made: Any = None,
    ) -> Response:
        tokens = await run_in_threadpool(self.services.tokens.list)
        return self.web.render(
            request,
            "console_tokens.html",
            user,
            errors=errors,
            form=form,
            tokens=tokens,
            made=made,
            done=request.query_params.get("done", ""),
        )

    def _create_token(self, form: dict[str, Any], errors: Errors) -> Any:
        data = {"name": text(form, "name"), "expires_days": text(form, "expires_days") or None}
        by = f"user:{form['_admin']}"  # as the API records an admin's password login
        return self._do(TokenCreate, data, errors, lambda r: self.services.tokens.create(r, by))

    def _delete_token(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.tokens.delete(text(form, "name")), errors, frozenset())
        return "token-deleted"
