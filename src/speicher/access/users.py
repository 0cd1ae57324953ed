"""Users: Speicher accounts, each also a locked Unix account with a stable uid."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from speicher import names
from speicher.access import passwords
from speicher.access.grants import GrantService
from speicher.access.ids import allocate, create_with_free_id, undone_on_failure
from speicher.access.models import UserCreate, UserInfo, UserUpdate
from speicher.config import Settings
from speicher.db import Database, Group, User
from speicher.errors import Forbidden, NotFound, Validator, translated
from speicher.events import EventService
from speicher.hooks import USER_DELETED, USER_PASSWORD, USER_STATE, Hooks
from speicher.system import accounts

log = logging.getLogger(__name__)


class UserService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        grants: GrantService,
        hooks: Hooks,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.grants = grants
        self.hooks = hooks

    def unix_name(self, name: str) -> str:
        return f"{self.settings.account_prefix}{name}"

    @staticmethod
    def _row(s: Session, name: str) -> User:
        user = s.scalars(select(User).where(User.name == name)).first()
        if user is None:
            raise NotFound(f"user '{name}' does not exist")
        return user

    def _info(self, user: User) -> UserInfo:
        return UserInfo(
            name=user.name,
            uid=user.uid,
            unix_name=self.unix_name(user.name),
            full_name=user.full_name,
            email=user.email,
            admin=user.is_admin,
            enabled=user.enabled,
            groups=[g.name for g in user.groups],
            created_at=user.created_at,
        )

    def list(self) -> list[UserInfo]:
        with self.db.session() as s:
            return [self._info(u) for u in s.scalars(select(User).order_by(User.name))]

    def get(self, name: str) -> UserInfo:
        with self.db.session() as s:
            return self._info(self._row(s, name))

    def create(self, req: UserCreate) -> UserInfo:
        """Create the Unix account, then the user; undo the account if recording fails."""
        v = Validator()
        max_len = 32 - len(self.settings.account_prefix)
        if reason := names.account_name(req.name, max_len):
            v.add("name", reason)
        if reason := passwords.check(req.password, req.name):
            v.add("password", reason)
        with self.db.session() as s:
            if s.scalars(select(User).where(User.name == req.name)).first():
                v.add("name", f"user '{req.name}' already exists")
        unix = self.unix_name(req.name)
        if not v.problems and accounts.user_exists(unix):
            v.add("name", f"the system already has an account named '{unix}'")
        v.check()
        password_hash = passwords.hash_password(req.password)
        unix_group = self.settings.primary_group

        def used() -> list[int]:
            with self.db.session() as s:
                return list(s.scalars(select(User.uid)))

        uid = create_with_free_id(
            self.settings.uid_base,
            used,
            accounts.uid_taken,
            lambda uid: accounts.useradd(unix, uid, unix_group, req.full_name),
            "account",
        )
        with (
            undone_on_failure(lambda: accounts.userdel(unix), f"user '{req.name}' already exists"),
            self.db.session() as s,
        ):
            s.add(
                User(
                    name=req.name,
                    uid=uid,
                    full_name=req.full_name,
                    email=req.email,
                    password_hash=password_hash,
                    is_admin=req.admin,
                )
            )
            self.hooks.emit(USER_PASSWORD, name=req.name, unix_name=unix, password=req.password)
        self.events.record("info", "user.created", req.name, f"user {req.name} created")
        return self.get(req.name)

    def update(self, name: str, req: UserUpdate) -> UserInfo:
        with self.db.session() as s:
            user = self._row(s, name)
            if (req.admin is False or req.enabled is False) and user.is_admin and user.enabled:
                self._keep_an_admin(s, user)
            if req.full_name is not None and req.full_name != user.full_name:
                with translated("changing the Unix account"):
                    accounts.usermod_comment(self.unix_name(name), req.full_name)
                user.full_name = req.full_name
            if req.email is not None:
                user.email = req.email
            if req.admin is not None:
                user.is_admin = req.admin
            if req.enabled is not None and req.enabled != user.enabled:
                user.enabled = req.enabled
                self.hooks.emit(
                    USER_STATE, name=name, unix_name=self.unix_name(name), enabled=req.enabled
                )
        self.events.record("info", "user.updated", name, f"user {name} changed")
        return self.get(name)

    @staticmethod
    def _keep_an_admin(s: Session, user: User) -> None:
        others = s.scalar(
            select(func.count())
            .select_from(User)
            .where(User.is_admin.is_(True), User.enabled.is_(True), User.id != user.id)
        )
        if not others:
            raise Forbidden(f"'{user.name}' is the last enabled admin; make another admin first")

    def set_password(self, name: str, password: str) -> None:
        v = Validator()
        if reason := passwords.check(password, name):
            v.add("password", reason)
        v.check()
        with self.db.session() as s:
            self._row(s, name).password_hash = passwords.hash_password(password)
            self.hooks.emit(
                USER_PASSWORD, name=name, unix_name=self.unix_name(name), password=password
            )
        self.events.record("info", "user.password", name, f"password of {name} changed")

    def delete(self, name: str) -> None:
        with self.db.session() as s:
            user = self._row(s, name)
            if user.is_admin and user.enabled:
                self._keep_an_admin(s, user)
            user_id = user.id
        affected = self.grants.shares_of(user_id=user_id)
        unix = self.unix_name(name)
        self.hooks.emit(USER_DELETED, name=name, unix_name=unix)
        if accounts.user_exists(unix):
            with translated("deleting the Unix account"):
                accounts.userdel(unix)
        with self.db.session() as s:
            s.delete(self._row(s, name))
        if affected:
            self.grants.apply_all(affected)
        self.events.record("info", "user.deleted", name, f"user {name} deleted")

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        """The user if ``password`` is right and the user is enabled; else None."""
        with self.db.session() as s:
            user = s.scalars(select(User).where(User.name == name)).first()
            stored = user.password_hash if user else passwords.DUMMY_HASH
            ok = passwords.verify(stored, password)
            if user is None or not ok or not user.enabled:
                return None
            return self._info(user)

    # -- reconciling -------------------------------------------------------------------------

    def ensure_primary_group(self) -> None:
        group = self.settings.primary_group
        if accounts.group_exists(group):
            return
        with self.db.session() as s:
            used = list(s.scalars(select(Group.gid)))
        gid = allocate(self.settings.uid_base, used, accounts.gid_taken)
        with translated("creating the primary group"):
            accounts.groupadd(group, gid)

    def ensure_accounts(self) -> None:
        """Give every user its Unix account back (with the same uid) if it is gone."""
        with self.db.session() as s:
            users = [(u.name, u.uid, u.full_name) for u in s.scalars(select(User))]
        for name, uid, full_name in users:
            unix = self.unix_name(name)
            if not accounts.user_exists(unix):
                log.warning("Unix account %s is missing; creating it again", unix)
                with translated(f"re-creating the Unix account of {name}"):
                    accounts.useradd(unix, uid, self.settings.primary_group, full_name)

    def ensure_admin(self) -> str | None:
        """Create ``admin`` when there is no user; return its password if it was generated."""
        with self.db.session() as s:
            if s.scalar(select(func.count()).select_from(User)):
                return None
        generated = not self.settings.admin_password
        password = self.settings.admin_password or secrets.token_urlsafe(12)
        self.create(
            UserCreate(name="admin", password=password, full_name="Administrator", admin=True)
        )
        return password if generated else None
