"""Groups: sets of users, each also a Unix group with a stable gid."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from speicher import names
from speicher.access.grants import GrantService
from speicher.access.ids import create_with_free_id, undone_on_failure
from speicher.access.models import GroupCreate, GroupInfo
from speicher.config import Settings
from speicher.db import Database, Group, User
from speicher.errors import Conflict, InvalidInput, NotFound, Validator, translated
from speicher.events import EventService
from speicher.system import accounts


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
        group = s.scalars(select(Group).where(Group.name == name)).first()
        if group is None:
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
            return [self._info(g) for g in s.scalars(select(Group).order_by(Group.name))]

    def get(self, name: str) -> GroupInfo:
        with self.db.session() as s:
            return self._info(self._row(s, name))

    def create(self, req: GroupCreate) -> GroupInfo:
        v = Validator()
        if reason := names.account_name(req.name, 32 - len(self.settings.account_prefix)):
            v.add("name", reason)
        with self.db.session() as s:
            if s.scalars(select(Group).where(Group.name == req.name)).first():
                v.add("name", f"group '{req.name}' already exists")
        unix = self.unix_name(req.name)
        if not v.problems and accounts.group_exists(unix):
            v.add("name", f"the system already has a group named '{unix}'")
        v.check()

        def used() -> list[int]:
            with self.db.session() as s:
                return list(s.scalars(select(Group.gid)))

        gid = create_with_free_id(
            self.settings.uid_base,
            used,
            accounts.gid_taken,
            lambda gid: accounts.groupadd(unix, gid),
            "group",
        )
        with (
            undone_on_failure(
                lambda: accounts.groupdel(unix), f"group '{req.name}' already exists"
            ),
            self.db.session() as s,
        ):
            s.add(Group(name=req.name, gid=gid, description=req.description))
        self.events.record("info", "group.created", req.name, f"group {req.name} created")
        return self.get(req.name)

    def delete(self, name: str) -> None:
        with self.db.session() as s:
            group_id = self._row(s, name).id
        affected = self.grants.shares_of(group_id=group_id)
        unix = self.unix_name(name)
        if accounts.group_exists(unix):
            with translated("deleting the Unix group"):
                accounts.groupdel(unix)
        with self.db.session() as s:
            s.delete(self._row(s, name))
        if affected:
            self.grants.apply_all(affected)
        self.events.record("info", "group.deleted", name, f"group {name} deleted")

    def add_member(self, name: str, user: str) -> GroupInfo:
        with self.db.session() as s:
            group = self._row(s, name)
            member = s.scalars(select(User).where(User.name == user)).first()
            if member is None:
                raise InvalidInput(field="user", reason=f"user '{user}' does not exist")
            if member in group.members:
                raise Conflict(f"user '{user}' is already a member of '{name}'")
            with translated("adding the user to the Unix group"):
                accounts.add_member(self.unix_name(name), self.unix_name(user))
            group.members.append(member)
        self.events.record("info", "group.member-added", name, f"{user} joined {name}")
        return self.get(name)

    def remove_member(self, name: str, user: str) -> GroupInfo:
        with self.db.session() as s:
            group = self._row(s, name)
            member = next((u for u in group.members if u.name == user), None)
            if member is None:
                raise NotFound(f"user '{user}' is not a member of '{name}'")
            with translated("removing the user from the Unix group"):
                accounts.remove_member(self.unix_name(name), self.unix_name(user))
            group.members.remove(member)
        self.events.record("info", "group.member-removed", name, f"{user} left {name}")
        return self.get(name)

    def ensure_groups(self) -> None:
        """Give every group its Unix group (same gid) and members back if they are gone."""
        with self.db.session() as s:
            groups = [
                (g.name, g.gid, [u.name for u in g.members]) for g in s.scalars(select(Group))
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
