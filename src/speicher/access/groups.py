"""Groups: sets of users, each also a Unix group with a stable gid.

As for users, the intent of a creation or deletion is recorded first (``state``) and
:meth:`GroupService.recover` finishes or undoes it at start; a gid is never given twice."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from speicher import names
from speicher.access.grants import GrantService
from speicher.access.ids import create_with_reserved_id, reserve
from speicher.access.models import GroupCreate, GroupInfo
from speicher.config import Settings
from speicher.db import Database, Group, User
from speicher.errors import Conflict, InvalidInput, NotFound, OperationFailed, Validator, translated
from speicher.events import EventService
from speicher.faults import crash_point
from speicher.system import accounts
from speicher.system.run import CommandError


class GroupService:
    def __init__(
        self, settings: Settings, db: Database, events: EventService, grants: GrantService
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.grants = grants

    def unix_name(self, name: str) -> str:
        return f"{self.settings.account_prefix}{name}"

    @staticmethod
    def _row(s: Session, name: str) -> Group:
        group = s.scalars(select(Group).where(Group.name == names.normalize(name))).first()
        if group is None or group.state == "creating":
            raise NotFound(f"group '{name}' does not exist")
        return group

    def _info(self, group: Group) -> GroupInfo:
        return GroupInfo(
            name=group.name,
            gid=group.gid,
            unix_name=self.unix_name(group.name),
            description=group.description,
            members=[u.name for u in group.members],
            created_at=group.created_at,
        )

    def list(self) -> list[GroupInfo]:
        with self.db.session() as s:
            query = select(Group).where(Group.state == "ready").order_by(Group.name)
            return [self._info(g) for g in s.scalars(query)]

    def get(self, name: str) -> GroupInfo:
        with self.db.session() as s:
            return self._info(self._row(s, name))

    def create(self, req: GroupCreate) -> GroupInfo:
        name = names.normalize(req.name)
        v = Validator()
        if reason := names.account_name(name, 32 - len(self.settings.account_prefix)):
            v.add("name", reason)
        v.check()
        with self.db.session() as s:
            if s.scalars(select(Group).where(Group.name == name)).first():
                raise Conflict(f"group '{name}' already exists", field="name")
        unix = self.unix_name(name)
        if accounts.group_exists(unix):
            raise Conflict(
                f"the system already has a Unix group named '{unix}'; choose another name",
                field="name",
            )
        gid = reserve(self.db, "gid", self.settings.uid_base, accounts.gid_taken, name)
        try:
            with self.db.session() as s:
                s.add(Group(name=name, gid=gid, description=req.description, state="creating"))
        except IntegrityError:
            raise Conflict(f"group '{name}' already exists", field="name") from None
        try:
            crash_point("group.create.recorded")
            try:
                made = create_with_reserved_id(
                    self.db,
                    "gid",
                    self.settings.uid_base,
                    accounts.gid_taken,
                    lambda n: accounts.groupadd(unix, n),
                    name,
                    first=gid,
                )
            except CommandError as exc:
                if accounts.group_exists(unix):
                    raise Conflict(f"the system already has a Unix group named '{unix}'") from None
                raise OperationFailed(
                    f"the Unix group of '{name}' could not be made", detail=str(exc)
                ) from None
            crash_point("group.create.unix")
            with self.db.session() as s:
                row = s.scalars(select(Group).where(Group.name == name)).one()
                row.gid, row.state = made, "ready"
        except BaseException:
            self._undo_create(name)
            raise
        self.events.record("info", "group.created", name, f"group {name} created")
        return self.get(name)

    def _undo_create(self, name: str) -> None:
        with self.db.session() as s:
            row = s.scalars(select(Group).where(Group.name == name)).first()
            gid = row.gid if row else None
        self._remove_group(name, gid)
        with self.db.session() as s:
            row = s.scalars(select(Group).where(Group.name == name)).first()
            if row is not None:
                s.delete(row)

    def _remove_group(self, name: str, gid: int | None) -> None:
        """Delete the Unix group, but only if it is ours (same gid)."""
        unix = self.unix_name(name)
        if gid is not None and accounts.group_exists(unix) and accounts.gid_of(unix) == gid:
            with translated("deleting the Unix group"):
                accounts.groupdel(unix)

    def delete(self, name: str) -> None:
        with self.db.session() as s:
            group = self._row(s, name)
            group.state = "deleting"
            name = group.name
        crash_point("group.delete.recorded")
        self._finish_delete(name)

    def _finish_delete(self, name: str) -> None:
        with self.db.session() as s:
            group = s.scalars(select(Group).where(Group.name == name)).one()
            group_id, gid = group.id, group.gid
        affected = self.grants.shares_of(group_id=group_id)
        self._remove_group(name, gid)
        crash_point("group.delete.unix")
        with self.db.session() as s:
            row = s.scalars(select(Group).where(Group.name == name)).first()
            if row is not None:
                s.delete(row)
        if affected:
            self.grants.apply_all(affected)
        self.events.record("info", "group.deleted", name, f"group {name} deleted")

    def recover(self) -> None:
        """Finish or undo what a stopped daemon left half done."""
        with self.db.session() as s:
            pending = [(g.name, g.state) for g in s.scalars(select(Group)) if g.state != "ready"]
        for name, state in pending:
            if state == "creating":
                self._undo_create(name)
                self.events.record(
                    "warning",
                    "group.create-interrupted",
                    name,
                    f"creation of group {name} was interrupted and undone",
                )
            elif state == "deleting":
                self._finish_delete(name)

    def add_member(self, name: str, user: str) -> GroupInfo:
        user = names.normalize(user)
        with self.db.session() as s:
            group = self._row(s, name)
            name = group.name
            member = s.scalars(select(User).where(User.name == user, User.state == "ready")).first()
            if member is None:
                raise InvalidInput(field="user", reason=f"user '{user}' does not exist")
            if not member.file_access:
                raise InvalidInput(
                    field="user",
                    reason=f"user '{user}' has no file access; turn it on first "
                    f"(speicher user update {user} --file-access)",
                )
            if member in group.members:
                raise Conflict(f"user '{user}' is already a member of '{name}'", field="user")
        with translated("adding the user to the Unix group"):
            accounts.add_member(self.unix_name(name), self.unix_name(user))
        with self.db.session() as s:
            group = self._row(s, name)
            group.members.append(s.scalars(select(User).where(User.name == user)).one())
        self.events.record("info", "group.member-added", name, f"{user} joined {name}")
        return self.get(name)

    def remove_member(self, name: str, user: str) -> GroupInfo:
        user = names.normalize(user)
        with self.db.session() as s:
            group = self._row(s, name)
            name = group.name
            if not any(u.name == user for u in group.members):
                raise NotFound(f"user '{user}' is not a member of '{name}'")
        if self.unix_name(user) in accounts.group_members(self.unix_name(name)):
            with translated("removing the user from the Unix group"):
                accounts.remove_member(self.unix_name(name), self.unix_name(user))
        with self.db.session() as s:
            group = self._row(s, name)
            member = next((u for u in group.members if u.name == user), None)
            if member is not None:
                group.members.remove(member)
        self.events.record("info", "group.member-removed", name, f"{user} left {name}")
        return self.get(name)

    def ensure_groups(self) -> None:
        """Give every group its Unix group (same gid) and members back if they are gone."""
        with self.db.session() as s:
            groups = [
                (g.name, g.gid, [u.name for u in g.members if u.file_access])
                for g in s.scalars(select(Group).where(Group.state == "ready"))
            ]
        for name, gid, members in groups:
            unix = self.unix_name(name)
            with translated(f"restoring the Unix group of {name}"):
                if not accounts.group_exists(unix):
                    accounts.groupadd(unix, gid)
                present = set(accounts.group_members(unix))
                for user in members:
                    if self.unix_name(user) not in present:
                        accounts.add_member(unix, self.unix_name(user))
