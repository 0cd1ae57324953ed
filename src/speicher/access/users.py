"""Users: Speicher accounts. A user with file access is also a locked Unix account with a
stable uid (files have owners, Samba maps logins to it); an admin without file access is a
principal of the API and console only: no Unix account, no SMB password.

Creating and deleting a user are several steps on the machine (account, SMB password, ACLs).
The intent is recorded first (``state`` ``creating`` / ``deleting``), no database session is
held while a command runs, and :meth:`UserService.recover` finishes or undoes at start what a
stopped daemon left half done."""

from __future__ import annotations

import builtins
import contextlib
import logging
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from speicher import names
from speicher.access import passwords
from speicher.access.grants import GrantService
from speicher.access.ids import allocate, create_with_reserved_id, record, reserve
from speicher.access.models import UserCreate, UserInfo, UserUpdate
from speicher.config import Settings
from speicher.db import Database, Grant, Group, User
from speicher.errors import Conflict, Forbidden, NotFound, OperationFailed, Validator, translated
from speicher.events import EventService
from speicher.faults import crash_point
from speicher.hooks import USER_DELETED, USER_PASSWORD, USER_STATE, Hooks
from speicher.system import accounts
from speicher.system.run import CommandError

log = logging.getLogger(__name__)

FIRST_ADMIN = "admin"


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
        user = s.scalars(select(User).where(User.name == names.normalize(name))).first()
        if user is None or user.state == "creating":
            raise NotFound(f"user '{name}' does not exist")
        return user

    def _info(self, user: User) -> UserInfo:
        return UserInfo(
            name=user.name,
            uid=user.uid,
            unix_name=self.unix_name(user.name) if user.file_access else "",
            full_name=user.full_name,
            email=user.email,
            admin=user.is_admin,
            file_access=user.file_access,
            enabled=user.enabled,
            groups=[g.name for g in user.groups],
            created_at=user.created_at,
        )

    def list(self) -> builtins.list[UserInfo]:
        with self.db.session() as s:
            query = select(User).where(User.state == "ready").order_by(User.name)
            return [self._info(u) for u in s.scalars(query)]

    def get(self, name: str) -> UserInfo:
        with self.db.session() as s:
            return self._info(self._row(s, name))

    # -- creating ------------------------------------------------------------------------------

    def problems(self, name: str, password: str) -> Validator:
        """What is wrong with a new user's name and password (the web console shows these
        beside the problems its form found itself)."""
        v = Validator()
        max_len = 32 - len(self.settings.account_prefix)
        if reason := names.account_name(names.normalize(name), max_len):
            v.add("name", reason)
        if reason := passwords.check(password, name):
            v.add("password", reason)
        return v

    def create(self, req: UserCreate) -> UserInfo:
        """Record the intent, make the Unix account and the SMB password (with file access),
        then mark the user ready; undo everything if a step fails."""
        name = names.normalize(req.name)
        file_access = req.file_access if req.file_access is not None else not req.admin
        self.problems(req.name, req.password).check()
        with self.db.session() as s:
            if s.scalars(select(User).where(User.name == name)).first():
                raise Conflict(f"user '{name}' already exists", field="name")
        unix = self.unix_name(name)
        if file_access and accounts.user_exists(unix):
            raise Conflict(
                f"the system already has a Unix account named '{unix}'; choose another name",
                field="name",
            )
        password_hash = passwords.hash_password(req.password)
        uid = None
        if file_access:
            uid = reserve(self.db, "uid", self.settings.uid_base, accounts.uid_taken, name)
        try:
            with self.db.session() as s:
                s.add(
                    User(
                        name=name,
                        uid=uid,
                        file_access=file_access,
                        state="creating",
                        full_name=req.full_name,
                        email=req.email,
                        password_hash=password_hash,
                        is_admin=req.admin,
                    )
                )
        except IntegrityError:
            raise Conflict(f"user '{name}' already exists", field="name") from None
        try:
            crash_point("user.create.recorded")
            if uid is not None:
                uid = self._make_account(name, uid, req.full_name)
                crash_point("user.create.account")
                self.hooks.emit(USER_PASSWORD, name=name, unix_name=unix, password=req.password)
                crash_point("user.create.smb")
            with self.db.session() as s:
                s.scalars(select(User).where(User.name == name)).one().state = "ready"
        except BaseException:
            self._undo_create(name)
            raise
        self.events.record("info", "user.created", name, f"user {name} created")
        return self.get(name)

    def _make_account(self, name: str, uid: int, full_name: str) -> int:
        """Make the Unix account; return its uid (a new one if another process took ``uid``
        meanwhile; the row follows)."""
        unix = self.unix_name(name)
        try:
            made = create_with_reserved_id(
                self.db,
                "uid",
                self.settings.uid_base,
                accounts.uid_taken,
                lambda n: accounts.useradd(unix, n, self.settings.primary_group, full_name),
                name,
                first=uid,
            )
        except CommandError as exc:
            log.error("useradd %s (uid %d) failed: %s", unix, uid, exc)
            if accounts.user_exists(unix):
                raise Conflict(f"the system already has a Unix account named '{unix}'") from None
            raise OperationFailed(
                f"the Unix account of '{name}' could not be made", detail=str(exc)
            ) from None
        if made != uid:
            with self.db.session() as s:
                s.scalars(select(User).where(User.name == name)).one().uid = made
        return made

    def _undo_create(self, name: str) -> None:
        """Remove what a creation made: the SMB entry, the Unix account (only if it is ours),
        the row. The uid stays recorded, never to be given again."""
        with self.db.session() as s:
            row = s.scalars(select(User).where(User.name == name)).first()
            uid = row.uid if row else None
        self._remove_account(name, uid)
        with self.db.session() as s:
            row = s.scalars(select(User).where(User.name == name)).first()
            if row is not None:
                s.delete(row)

    def _remove_account(self, name: str, uid: int | None) -> None:
        unix = self.unix_name(name)
        with contextlib.suppress(Exception):
            self.hooks.emit(USER_DELETED, name=name, unix_name=unix)
        if uid is not None and accounts.user_exists(unix) and accounts.uid_of(unix) == uid:
            with translated("deleting the Unix account"):
                accounts.userdel(unix)

    # -- changing ------------------------------------------------------------------------------

    def update(self, name: str, req: UserUpdate, guard: bool = True) -> UserInfo:
        """``guard=False``: also the last enabled admin may be disabled (ransomware's response:
        root can always enable them again through the local socket)."""
        with self.db.session() as s:
            user = self._row(s, name)
            name = user.name
            disabling = req.admin is False or req.enabled is False
            if guard and disabling and user.is_admin and user.enabled:
                self._keep_an_admin(s, user)
            had_access, uid, enabled = user.file_access, user.uid, user.enabled
        if req.file_access is True and not had_access:
            uid = self._grant_file_access(name, uid, req.full_name)
        elif req.file_access is False and had_access:
            self._take_file_access(name, uid)
        has_access = req.file_access if req.file_access is not None else had_access
        if req.full_name is not None and has_access:
            with translated("changing the Unix account"):
                accounts.usermod_comment(self.unix_name(name), req.full_name)
        if req.enabled is not None and req.enabled != enabled and has_access:
            self.hooks.emit(
                USER_STATE, name=name, unix_name=self.unix_name(name), enabled=req.enabled
            )
        with self.db.session() as s:
            user = self._row(s, name)
            user.file_access = has_access
            user.uid = uid
            if req.full_name is not None:
                user.full_name = req.full_name
            if req.email is not None:
                user.email = req.email
            if req.admin is not None:
                user.is_admin = req.admin
            if req.enabled is not None:
                user.enabled = req.enabled
        self.events.record("info", "user.updated", name, f"user {name} changed")
        return self.get(name)

    def _grant_file_access(self, name: str, uid: int | None, full_name: str | None) -> int:
        """A Unix account for a user who had none; a user who had one before gets their old
        uid back (and so their own files)."""
        unix = self.unix_name(name)
        if accounts.user_exists(unix):
            raise Conflict(
                f"the system already has a Unix account named '{unix}'", field="file_access"
            )
        if uid is None:
            uid = reserve(self.db, "uid", self.settings.uid_base, accounts.uid_taken, name)
        with self.db.session() as s:
            comment = full_name if full_name is not None else self._row(s, name).full_name
        uid = self._make_account(name, uid, comment)
        self.events.record(
            "warning",
            "smb.no-password",
            name,
            f"user {name} has file access now; set their password again "
            f"('speicher user passwd {name}') so they can log in over SMB",
        )
        return uid

    def _take_file_access(self, name: str, uid: int | None) -> None:
        """Grants, group memberships, the SMB login and the Unix account go; files stay."""
        with self.db.session() as s:
            user = self._row(s, name)
            grants = list(s.scalars(select(Grant).where(Grant.user_id == user.id)))
            affected = sorted({g.share.name for g in grants})
            for grant in grants:
                s.delete(grant)
            user.groups.clear()
            user.file_access = False
        self._remove_account(name, uid)
        if affected:
            self.grants.apply_all(affected)

    @staticmethod
    def _keep_an_admin(s: Session, user: User) -> None:
        others = s.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.is_admin.is_(True),
                User.enabled.is_(True),
                User.state == "ready",
                User.id != user.id,
            )
        )
        if not others:
            raise Forbidden(f"'{user.name}' is the last enabled admin; make another admin first")

    def set_password(self, name: str, password: str) -> None:
        v = Validator()
        if reason := passwords.check(password, name):
            v.add("password", reason)
        v.check()
        password_hash = passwords.hash_password(password)
        with self.db.session() as s:
            user = self._row(s, name)
            name, file_access = user.name, user.file_access
        if file_access:
            self.hooks.emit(
                USER_PASSWORD, name=name, unix_name=self.unix_name(name), password=password
            )
        with self.db.session() as s:
            self._row(s, name).password_hash = password_hash
        self.events.record("info", "user.password", name, f"password of {name} changed")

    # -- deleting ------------------------------------------------------------------------------

    def delete(self, name: str) -> None:
        """Delete a user; their files stay, owned by their old uid (never given again)."""
        with self.db.session() as s:
            user = self._row(s, name)
            if user.is_admin and user.enabled:
                self._keep_an_admin(s, user)
            user.state = "deleting"
            name = user.name
        crash_point("user.delete.recorded")
        self._finish_delete(name)

    def _finish_delete(self, name: str) -> None:
        with self.db.session() as s:
            user = s.scalars(select(User).where(User.name == name)).one()
            user_id, uid, file_access = user.id, user.uid, user.file_access
        affected = self.grants.shares_of(user_id=user_id)
        if file_access:
            self._remove_account(name, uid)
        crash_point("user.delete.account")
        with self.db.session() as s:
            row = s.scalars(select(User).where(User.name == name)).first()
            if row is not None:
                s.delete(row)
        if affected:
            self.grants.apply_all(affected)
        self.events.record("info", "user.deleted", name, f"user {name} deleted")

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        """The user if ``password`` is right and the user is enabled; else None."""
        with self.db.session() as s:
            user = s.scalars(
                select(User).where(User.name == names.normalize(name), User.state == "ready")
            ).first()
            stored = user.password_hash if user else passwords.DUMMY_HASH
        ok = passwords.verify(stored, password)  # slow: no session held meanwhile
        if user is None or not ok or not user.enabled:
            return None
        return self.get(user.name)

    # -- reconciling -------------------------------------------------------------------------

    def recover(self) -> None:
        """Finish or undo what a stopped daemon left half done."""
        with self.db.session() as s:
            pending = [(u.name, u.state) for u in s.scalars(select(User)) if u.state != "ready"]
        for name, state in pending:
            if state == "creating":
                log.warning("user %s was being created when the daemon stopped; undoing", name)
                self._undo_create(name)
                self.events.record(
                    "warning",
                    "user.create-interrupted",
                    name,
                    f"creation of user {name} was interrupted and undone",
                )
            elif state == "deleting":
                log.warning("user %s was being deleted when the daemon stopped; finishing", name)
                self._finish_delete(name)

    def ensure_primary_group(self) -> None:
        group = self.settings.primary_group
        if accounts.group_exists(group):
            record(self.db, "gid", accounts.gid_of(group), group)
            return
        with self.db.session() as s:
            used = list(s.scalars(select(Group.gid)))
        gid = allocate(self.settings.uid_base, used, accounts.gid_taken)
        with translated("creating the primary group"):
            create_with_reserved_id(
                self.db,
                "gid",
                gid,
                accounts.gid_taken,
                lambda n: accounts.groupadd(group, n),
                group,
            )

    def ensure_accounts(self) -> None:
        """Give every user with file access its Unix account back (same uid) if it is gone."""
        with self.db.session() as s:
            users = [
                (u.name, u.uid, u.full_name)
                for u in s.scalars(
                    select(User).where(User.file_access.is_(True), User.state == "ready")
                )
            ]
        for name, uid, full_name in users:
            unix = self.unix_name(name)
            if uid is not None and not accounts.user_exists(unix):
                log.warning("Unix account %s is missing; creating it again", unix)
                with translated(f"re-creating the Unix account of {name}"):
                    accounts.useradd(unix, uid, self.settings.primary_group, full_name)

    def ensure_admin(self) -> str | None:
        """Create the first admin when there is no user; return its password if generated.
        The first admin has no file access, so it needs no Unix account (a system may have an
        account named ``admin`` of its own) and its password is never an SMB password."""
        with self.db.session() as s:
            if s.scalar(select(func.count()).select_from(User)):
                return None
        generated = not self.settings.admin_password
        password = self.settings.admin_password or secrets.token_urlsafe(12)
        self.create(
            UserCreate(
                name=FIRST_ADMIN,
                password=password,
                full_name="Administrator",
                admin=True,
                file_access=False,
            )
        )
        return password if generated else None
