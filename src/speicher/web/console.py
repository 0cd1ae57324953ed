"""The console's management pages (admins): first-run setup, pools and disks, shares and
their grants, users. Each page is a GET that shows the state and its forms, and a POST per
form (``action``) that calls one service and goes back to the page (303) or shows the page
again with every problem next to its field (422). No rule lives here: what is allowed, and
why not, is the services' answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anyio import from_thread
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from speicher import __version__, preferences
from speicher.access.models import GrantRequest, UserCreate, UserUpdate
from speicher.errors import OperationFailed
from speicher.events.models import AlertSettingsUpdate
from speicher.preferences import PreferencesUpdate
from speicher.protection.models import PolicyCreate, PolicyUpdate
from speicher.protocols.smb.models import SmbSettingsUpdate
from speicher.storage.models import (
    PoolCreate,
    PoolReplace,
    ShareCreate,
    ShareUpdate,
    SmbOptionsUpdate,
    VirtualDiskCreate,
)
from speicher.tls import CertificateUpload
from speicher.web.forms import Errors, Page, call, checked, model, page_of, text
from speicher.web.sessions import WebUser

if TYPE_CHECKING:
    from speicher.web.app import WebApp

PROFILES = ("single", "raid1", "raid1c3", "raid10", "raid5", "raid6")
SNAPSHOTS_PAGE = 50
EVENTS_PAGE = 50
EVENTS_READ = 2000  # the newest events a filter looks through
LEVELS = ("info", "warning", "error", "critical")
SHARES_PAGE = 25  # shares per page of the console (each with its forms)
# what a snapshot schedule keeps, in the forms that make and change one
KEEP_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")


class Console:
    def __init__(self, web: WebApp) -> None:
        self.web = web
        self.services = web.services

    def routes(self) -> list[Route]:
        return [
            Route("/console/setup/", self.setup, methods=["GET", "POST"]),
            Route("/console/pools/", self.pools, methods=["GET", "POST"]),
            Route("/console/shares/", self.shares, methods=["GET", "POST"]),
            Route("/console/users/", self.users, methods=["GET", "POST"]),
            Route("/console/snapshots/", self.snapshots, methods=["GET", "POST"]),
            Route("/console/events/", self.events, methods=["GET"]),
            Route("/console/alerts/", self.alerts, methods=["GET", "POST"]),
            Route("/console/system/", self.system, methods=["GET", "POST"]),
        ]

    # -- the frame of every page -----------------------------------------------------------

    async def _admin(self, request: Request) -> tuple[WebUser | None, Response | None]:
        """The admin of a request (for a POST: with a right CSRF token); else the answer."""
        if request.method == "POST":
            user, refused = await self.web.checked(request)
            if refused is not None:
                return None, refused
        else:
            user = await self.web.user_of(request)
            if user is None:
                return None, self.web.to_login(request)
        assert user is not None
        if not user.admin:
            page = self.web.render(
                request, "error.html", user, 403, message_key="admins", detail=""
            )
            return None, page
        return user, None

    async def _page(
        self,
        request: Request,
        handlers: dict[str, Callable[[dict[str, Any], Errors], Any]],
        show: Callable[[Request, WebUser, Errors, dict[str, Any]], Any],
    ) -> Response:
        user, refused = await self._admin(request)
        if refused is not None or user is None:
            return refused or self.web.to_login(request)
        errors = Errors()
        form: dict[str, Any] = {}
        if request.method == "POST":
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            form["_admin"] = user.name  # who acts: the session's, never the form's
            handler = handlers.get(form.get("action", ""))
            if handler is None:
                errors.add("", "unknown form")
            else:
                done = await run_in_threadpool(handler, form, errors)
                if not errors:
                    target = request.url.path + (f"?done={done}" if isinstance(done, str) else "")
                    return RedirectResponse(target, status_code=303)
        page: Response = await show(request, user, errors, form)
        if errors:
            page.status_code = 422
        return page

    def _do(self, cls: type[BaseModel], data: dict[str, Any], errors: Errors, run: Any) -> Any:
        """Validate ``data`` as ``cls`` and pass it to ``run``; problems into ``errors``."""
        request = model(cls, data, errors)
        if request is None:
            return None
        known = frozenset(cls.model_fields)
        return call(lambda: run(request), errors, known)

    # -- first-run setup ---------------------------------------------------------------------

    async def setup(self, request: Request) -> Response:
        """A newcomer's first minutes: a new admin password, disks (or virtual disks for a
        trial), the first pool, share and user, SMB on; each step is a form of this page."""
        return await self._page(
            request,
            {
                "password": self._admin_password,
                "virtual-disk": self._virtual_disk,
                "pool": self._create_pool,
                "share": self._create_share,
                "user": self._create_user_with_grant,
            },
            self._show_setup,
        )

    async def _show_setup(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        pools, disks, shares, users = await run_in_threadpool(
            lambda: (
                self.services.pools.list(),
                self.services.disks.list(),
                self.services.shares.names(),
                self.services.users.list(),
            )
        )
        jobs = await run_in_threadpool(self.services.jobs.list, 5, "running")
        return self.web.render(
            request,
            "setup.html",
            user,
            errors=errors,
            form=form,
            pools=pools,
            disks=[d for d in disks if d.state == "available"],
            shares=shares,
            people=[u for u in users if not u.admin],
            jobs=jobs,
            done=request.query_params.get("done", ""),
            profiles=PROFILES,
        )

    def _admin_password(self, form: dict[str, Any], errors: Errors) -> str | None:
        if form.get("password", "") != form.get("again", ""):
            errors.add("again", "the two passwords differ")
            return None
        call(
            lambda: self.services.users.set_password(form["_admin"], form.get("password", "")),
            errors,
            frozenset({"password"}),
        )
        return "password"

    def _virtual_disk(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {"name": text(form, "name"), "size": text(form, "size")}
        self._do(
            VirtualDiskCreate,
            data,
            errors,
            lambda r: self.services.disks.create_virtual(r.name, r.size),
        )
        return "disk"

    def _create_pool(self, form: dict[str, Any], errors: Errors) -> str | None:
        disks = [k.removeprefix("disk:") for k in form if k.startswith("disk:")]
        data = {"name": text(form, "name"), "profile": text(form, "profile"), "disks": disks}
        self._do(PoolCreate, data, errors, self.services.pools.create)
        return "pool"

    def _create_share(self, form: dict[str, Any], errors: Errors) -> str | None:
        data: dict[str, Any] = {
            "name": text(form, "name"),
            "pool": text(form, "pool"),
            "quota": text(form, "quota") or None,
            "description": text(form, "description"),
            "smb": SmbOptionsUpdate(enabled=checked(form, "smb")),
            "webdav": checked(form, "webdav"),
            "sftp": checked(form, "sftp"),
            "s3": checked(form, "s3"),
        }
        self._do(ShareCreate, data, errors, self.services.shares.create)
        return "share"

    def _create_user_with_grant(self, form: dict[str, Any], errors: Errors) -> str | None:
        created = self._create_user(form, errors)
        share = text(form, "share")
        if created and share and not errors:
            req = GrantRequest(user=text(form, "name"), access="rw")
            call(lambda: self.services.grants.grant(share, req), errors, frozenset({"share"}))
        return "user"

    # -- pools and disks ------------------------------------------------------------------

    async def pools(self, request: Request) -> Response:
        return await self._page(
            request,
            {
                "virtual-disk": self._virtual_disk,
                "create": self._create_pool,
                "scrub": self._scrub,
                "destroy": self._destroy_pool,
                "add-disk": self._add_disk,
                "remove-disk": self._remove_disk,
                "replace-disk": self._replace_disk,
            },
            self._show_pools,
        )

    async def _show_pools(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        def load() -> tuple[Any, Any, Any, Any]:
            pools = self.services.pools.list()
            scrubs = {p.name: self.services.scrubs.list(p.name, 5) for p in pools}
            health = {(h.pool, h.disk): h for h in self.services.health.report()}
            return pools, self.services.disks.list(), scrubs, health

        pools, disks, scrubs, health = await run_in_threadpool(load)
        return self.web.render(
            request,
            "console_pools.html",
            user,
            errors=errors,
            form=form,
            pools=pools,
            disks=disks,
            free=[d for d in disks if d.state == "available"],
            scrubs=scrubs,
            health=health,
            profiles=PROFILES,
            done=request.query_params.get("done", ""),
        )

    def _scrub(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.scrubs.start(text(form, "pool")), errors, frozenset())
        return "scrub"

    def _add_disk(self, form: dict[str, Any], errors: Errors) -> str | None:
        pool, disk = text(form, "pool"), text(form, "disk")
        call(lambda: self.services.pools.add_disk(pool, disk), errors, frozenset())
        return "disk-job"

    def _remove_disk(self, form: dict[str, Any], errors: Errors) -> str | None:
        pool, disk = text(form, "pool"), text(form, "disk")
        call(lambda: self.services.pools.remove_disk(pool, disk), errors, frozenset())
        return "disk-job"

    def _replace_disk(self, form: dict[str, Any], errors: Errors) -> str | None:
        pool = text(form, "pool")
        data = {"old": text(form, "old"), "new": text(form, "new")}
        self._do(PoolReplace, data, errors, lambda r: self.services.pools.replace_disk(pool, r))
        return "disk-job"

    def _destroy_pool(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.pools.destroy(text(form, "pool")), errors, frozenset())
        return "destroyed"

    # -- shares and grants ----------------------------------------------------------------

    async def shares(self, request: Request) -> Response:
        return await self._page(
            request,
            {
                "create": self._create_share,
                "grant": self._grant,
                "revoke": self._revoke,
                "protocols": self._protocols,
                "delete": self._delete_share,
            },
            self._show_shares,
        )

    async def _show_shares(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        """A page of the shares (names filtered and paged first: a box with a thousand shares
        builds only the page's 25)."""
        wanted = request.query_params.get("q", "").strip().casefold()
        names = await run_in_threadpool(self.services.shares.names)
        if wanted:
            names = [n for n in names if wanted in n]
        page = page_of(names, request.query_params.get("page"), SHARES_PAGE)
        shares, pools, users, groups = await run_in_threadpool(
            lambda: (
                self.services.shares.list(only=page.items),
                self.services.pools.list(),
                self.services.users.list(),
                self.services.groups.list(),
            )
        )
        return self.web.render(
            request,
            "console_shares.html",
            user,
            errors=errors,
            form=form,
            page=Page(shares, page.number, page.pages, page.total),
            wanted=request.query_params.get("q", ""),
            pools=pools,
            people=[u for u in users if u.file_access],
            groups=groups,
            done=request.query_params.get("done", ""),
        )

    def _grant(self, form: dict[str, Any], errors: Errors) -> str | None:
        who = text(form, "who")
        kind, _, name = who.partition(":")
        data = {kind if kind in ("user", "group") else "user": name, "access": text(form, "access")}
        self._do(
            GrantRequest, data, errors, lambda r: self.services.grants.grant(text(form, "share"), r)
        )
        return "grant"

    def _revoke(self, form: dict[str, Any], errors: Errors) -> str | None:
        kind, name, share = text(form, "principal"), text(form, "name"), text(form, "share")
        user = name if kind == "user" else None
        group = name if kind == "group" else None
        revoke = self.services.grants.revoke
        call(lambda: revoke(share, user=user, group=group), errors, frozenset())
        return "revoke"

    def _protocols(self, form: dict[str, Any], errors: Errors) -> str | None:
        """The share's settings form: protocols, SMB's options, quota, compression, sync."""
        options = {
            "enabled": checked(form, "smb"),
            "browseable": checked(form, "browseable"),
            "access_based_enumeration": checked(form, "abe"),
            "recycle": checked(form, "recycle"),
            "recycle_days": text(form, "recycle_days") or None,
            "mac": checked(form, "mac"),
            "time_machine": checked(form, "time_machine"),
            "time_machine_size": text(form, "time_machine_size") or "none",
            "encrypt": checked(form, "encrypt"),
            "guest": checked(form, "guest"),
        }
        smb = model(SmbOptionsUpdate, options, errors)
        if smb is None:
            return "protocols"
        data = {
            "smb": smb,
            "webdav": checked(form, "webdav"),
            "sftp": checked(form, "sftp"),
            "s3": checked(form, "s3"),
            "quota": text(form, "quota") or None,
            "compression": text(form, "compression"),
            "sync": text(form, "sync") or None,
        }
        name = text(form, "share")
        request = model(ShareUpdate, data, errors)
        if request is not None:
            known = frozenset(ShareUpdate.model_fields) | {"recycle_days", "time_machine_size"}
            call(lambda: self.services.shares.update(name, request), errors, known)
        return "protocols"

    def _delete_share(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.shares.delete(text(form, "share")), errors, frozenset())
        return "deleted"

    # -- snapshots ------------------------------------------------------------------------

    async def snapshots(self, request: Request) -> Response:
        return await self._page(
            request,
            {
                "create": self._snapshot,
                "lock": self._lock,
                "delete": self._delete_snapshot,
                "rollback": self._rollback,
                "clone": self._clone,
                "policy": self._create_policy,
                "policy-edit": self._edit_policy,
                "policy-delete": self._delete_policy,
                "policy-run": self._run_policy,
            },
            self._show_snapshots,
        )

    async def _show_snapshots(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        names = await run_in_threadpool(self.services.shares.names)
        chosen = (
            request.query_params.get("share") or form.get("share") or (names[0] if names else "")
        )
        snaps: list[Any] = []
        policies: list[Any] = []
        if chosen in names:
            snaps = await run_in_threadpool(self.services.snapshots.list, chosen)
            snaps.sort(key=lambda sn: sn.name, reverse=True)  # newest first
            policies = await run_in_threadpool(self.services.policies.list, chosen)
        return self.web.render(
            request,
            "console_snapshots.html",
            user,
            errors=errors,
            form=form,
            shares=names,
            share=chosen if chosen in names else "",
            page=page_of(snaps, request.query_params.get("page"), SNAPSHOTS_PAGE),
            policies=policies,
            now=dt.datetime.now(dt.UTC),
            done=request.query_params.get("done", ""),
        )

    def _until(self, form: dict[str, Any], errors: Errors) -> dt.datetime | None:
        """The lock date of the form (a day, locked to its end, UTC); None for no lock."""
        day = text(form, "until")
        if not day:
            return None
        try:
            date = dt.date.fromisoformat(day)
        except ValueError:
            errors.add("until", "a date like 2027-06-30")
            return None
        return dt.datetime.combine(date, dt.time(23, 59, 59), dt.UTC)

    def _snapshot(self, form: dict[str, Any], errors: Errors) -> str | None:
        until = self._until(form, errors)
        if not errors:
            share = text(form, "share")
            call(
                lambda: self.services.snapshots.create(share, locked_until=until),
                errors,
                frozenset({"locked_until"}),
            )
        return "snapshot"

    def _lock(self, form: dict[str, Any], errors: Errors) -> str | None:
        until = self._until(form, errors)
        if until is None and not errors:
            errors.add("until", "a date to lock it until")
        if not errors and until is not None:
            share, name = text(form, "share"), text(form, "name")
            call(lambda: self.services.snapshots.lock(share, name, until), errors, frozenset())
        return "locked"

    def _delete_snapshot(self, form: dict[str, Any], errors: Errors) -> str | None:
        share, name = text(form, "share"), text(form, "name")
        call(lambda: self.services.snapshots.delete(share, name), errors, frozenset())
        return "deleted"

    def _rollback(self, form: dict[str, Any], errors: Errors) -> str | None:
        share, name = text(form, "share"), text(form, "name")
        call(lambda: self.services.restore.rollback(share, name), errors, frozenset())
        return "rollback"

    def _clone(self, form: dict[str, Any], errors: Errors) -> str | None:
        share, name, to = text(form, "share"), text(form, "name"), text(form, "to")
        call(lambda: self.services.restore.clone(share, name, to), errors, frozenset({"to"}))
        return "clone"

    def _create_policy(self, form: dict[str, Any], errors: Errors) -> str | None:
        share = text(form, "share")
        data: dict[str, Any] = {"name": text(form, "name"), "schedule": text(form, "schedule")}
        for field in (*KEEP_FIELDS, "lock_days"):
            data[field] = text(form, field) or "0"
        self._do(PolicyCreate, data, errors, lambda r: self.services.policies.create(share, r))
        return "policy"

    def _edit_policy(self, form: dict[str, Any], errors: Errors) -> str | None:
        """A schedule's times, what it keeps, its lock and whether it runs; a field left
        empty keeps its value."""
        share, name = text(form, "share"), text(form, "name")
        data: dict[str, Any] = {"enabled": checked(form, "enabled")}
        for field in ("schedule", *KEEP_FIELDS, "lock_days"):
            if text(form, field):
                data[field] = text(form, field)
        update = self.services.policies.update
        self._do(PolicyUpdate, data, errors, lambda r: update(share, name, r))
        return "policy"

    def _delete_policy(self, form: dict[str, Any], errors: Errors) -> str | None:
        share, name = text(form, "share"), text(form, "name")
        call(lambda: self.services.policies.delete(share, name), errors, frozenset())
        return "policy-deleted"

    def _run_policy(self, form: dict[str, Any], errors: Errors) -> str | None:
        share, name = text(form, "share"), text(form, "name")
        call(lambda: self.services.policies.run(share, name), errors, frozenset())
        return "snapshot"

    # -- events and alerts ----------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        """The events, newest first, filtered by level (and worse), kind and words."""
        user, refused = await self._admin(request)
        if refused is not None or user is None:
            return refused or self.web.to_login(request)
        query = request.query_params
        level = query.get("level", "")
        kind = query.get("kind", "").strip()
        words = query.get("q", "").strip().casefold()
        found = await run_in_threadpool(self.services.events.list, EVENTS_READ, kind or None)
        worse = LEVELS[LEVELS.index(level) :] if level in LEVELS else LEVELS
        shown = [
            e
            for e in found
            if e.level in worse
            and (not words or words in e.message.casefold() or words in e.subject.casefold())
        ]
        return self.web.render(
            request,
            "console_events.html",
            user,
            page=page_of(shown, query.get("page"), EVENTS_PAGE),
            level=level,
            kind=kind,
            words=query.get("q", ""),
            levels=LEVELS,
        )

    async def alerts(self, request: Request) -> Response:
        return await self._page(
            request,
            {"save": self._save_alerts, "test": self._test_alerts},
            self._show_alerts,
        )

    async def _show_alerts(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        settings = await run_in_threadpool(self.services.alerts.get_settings)
        return self.web.render(
            request,
            "console_alerts.html",
            user,
            errors=errors,
            form=form,
            settings=settings,
            levels=LEVELS,
            done=request.query_params.get("done", ""),
        )

    def _save_alerts(self, form: dict[str, Any], errors: Errors) -> str | None:
        data: dict[str, Any] = {
            "smtp_host": text(form, "smtp_host"),
            "smtp_port": text(form, "smtp_port") or None,
            "smtp_starttls": checked(form, "smtp_starttls"),
            "smtp_username": text(form, "smtp_username"),
            "mail_from": text(form, "mail_from"),
            "mail_to": [a.strip() for a in text(form, "mail_to").split(",") if a.strip()],
            "webhook_url": text(form, "webhook_url"),
            "min_level": text(form, "min_level") or None,
        }
        if form.get("smtp_password"):  # empty: keep the stored one
            data["smtp_password"] = form["smtp_password"]
        self._do(AlertSettingsUpdate, data, errors, self.services.alerts.update_settings)
        return "alerts"

    def _test_alerts(self, form: dict[str, Any], errors: Errors) -> str | None:
        try:
            call(self.services.alerts.test, errors, frozenset())
        except OperationFailed as exc:  # the mail server's or webhook's answer, for the admin
            errors.add("", exc.message)
        return "tested"

    # -- system -----------------------------------------------------------------------------

    async def system(self, request: Request) -> Response:
        return await self._page(
            request,
            {
                "certificate": self._upload_certificate,
                "self-signed": self._self_signed,
                "smb": self._smb_settings,
                "time-zone": self._time_zone,
            },
            self._show_system,
        )

    async def _show_system(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        certificate, smb = await run_in_threadpool(
            lambda: (self.web.certificates.show(), self.services.smb.get_settings())
        )
        return self.web.render(
            request,
            "console_system.html",
            user,
            errors=errors,
            form=form,
            certificate=certificate,
            smb=smb,
            settings=self.services.settings,
            time_zone=self.services.preferences.get().time_zone,
            time_zones=preferences.time_zones(),
            version=__version__,
            done=request.query_params.get("done", ""),
        )

    def _upload_certificate(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {"certificate": form.get("certificate", ""), "key": form.get("key", "")}
        store = self.web.certificates
        if self._do(CertificateUpload, data, errors, store.replace) is not None:
            from_thread.run_sync(store.reload)  # handshakes happen on the event loop
        return "certificate"

    def _self_signed(self, form: dict[str, Any], errors: Errors) -> str | None:
        store = self.web.certificates
        if call(store.regenerate, errors, frozenset()) is not None:
            from_thread.run_sync(store.reload)
        return "certificate"

    def _smb_settings(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {
            "workgroup": text(form, "workgroup"),
            "server_name": text(form, "server_name"),
            "signing": text(form, "signing") or None,
            "port": text(form, "port") or None,
        }
        self._do(SmbSettingsUpdate, data, errors, self.services.smb.update_settings)
        return "smb"

    def _time_zone(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {"time_zone": text(form, "time_zone")}
        self._do(PreferencesUpdate, data, errors, self.services.preferences.update)
        return "time-zone"

    # -- users ----------------------------------------------------------------------------

    async def users(self, request: Request) -> Response:
        return await self._page(
            request,
            {
                "create": self._create_user,
                "password": self._set_password,
                "enable": lambda f, e: self._enable(f, e, True),
                "disable": lambda f, e: self._enable(f, e, False),
                "delete": self._delete_user,
            },
            self._show_users,
        )

    async def _show_users(
        self, request: Request, user: WebUser, errors: Errors, form: dict[str, Any]
    ) -> Response:
        users = await run_in_threadpool(self.services.users.list)
        return self.web.render(
            request,
            "console_users.html",
            user,
            errors=errors,
            form=form,
            users=users,
            done=request.query_params.get("done", ""),
        )

    def _create_user(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {
            "name": text(form, "name"),
            "password": form.get("password", ""),
            "full_name": text(form, "full_name"),
            "email": text(form, "email"),
            "admin": checked(form, "admin"),
        }
        created = self._do(UserCreate, data, errors, self.services.users.create)
        if errors.of("email") or errors.of("full_name"):
            # the form's own problems stopped it before the service saw the name and password:
            # its problems with those too, so every problem shows at once
            found = self.services.users.problems(data["name"], data["password"])
            for problem in found.problems:
                if not errors.of(problem.field):
                    errors.add(problem.field, problem.reason)
        return "user" if created is not None else None

    def _set_password(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(
            lambda: self.services.users.set_password(text(form, "user"), form.get("password", "")),
            errors,
            frozenset({"password"}),
        )
        return "password"

    def _enable(self, form: dict[str, Any], errors: Errors, enabled: bool) -> str | None:
        name = text(form, "user")
        call(
            lambda: self.services.users.update(name, UserUpdate(enabled=enabled)),
            errors,
            frozenset(),
        )
        return "enabled" if enabled else "disabled"

    def _delete_user(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.users.delete(text(form, "user")), errors, frozenset())
        return "deleted"
