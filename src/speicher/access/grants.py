"""Grants: who may read or write a share. The share directory's POSIX ACL follows them, so the
operating system enforces what the API says for every protocol."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from speicher.access.models import GrantRequest
from speicher.db import Database, Grant, Group, Share, User
from speicher.errors import InvalidInput, NotFound, SpeicherError, Validator, translated
from speicher.events import EventService
from speicher.hooks import SHARES_CHANGED, Hooks
from speicher.storage import ShareService
from speicher.storage.models import ShareInfo
from speicher.system import accounts, acl, btrfs
from speicher.system.run import CommandError

log = logging.getLogger(__name__)

PERMS = {"rw": "rwx", "ro": "r-x"}
SavedGrant = tuple[int | None, int | None, str]  # user id, group id, access
GUEST_ACCOUNT = "nobody"  # Samba's guest account; reads a share when guest access is on


def desired_entries(share: Share) -> list[acl.Entry]:
    """The named ACL entries a share's grants (and guest access) call for."""
    entries = []
    if share.smb_guest:
        entries.append(acl.Entry("user", accounts.uid_of(GUEST_ACCOUNT), PERMS["ro"]))
    for g in share.grants:
        if g.user is not None:
            if g.user.uid is not None and g.user.file_access:
                entries.append(acl.Entry("user", g.user.uid, PERMS[g.access]))
        elif g.group is not None:
            entries.append(acl.Entry("group", g.group.gid, PERMS[g.access]))
    return entries


class GrantService:
    def __init__(
        self, db: Database, events: EventService, shares: ShareService, hooks: Hooks
    ) -> None:
        self.db = db
        self.events = events
        self.shares = shares
        self.hooks = hooks
        hooks.subscribe(SHARES_CHANGED, self._share_changed)

    def _share_changed(self, share: str | None = None, **_: object) -> None:
        """Guest access is part of the ACL: follow a share's settings."""
        if share is not None:
            self.apply(share)

    def grant(self, share: str, req: GrantRequest) -> ShareInfo:
        """Give a user or a group ``rw`` or ``ro`` access; replaces an earlier grant."""
        v = Validator()
        if (req.user is None) == (req.group is None):
            v.add("user", "name exactly one user or one group")
        v.check()
        with self.db.session() as s:
            share_row = self._share(s, share)
            if req.user is not None:
                user = s.scalars(
                    select(User).where(User.name == req.user, User.state == "ready")
                ).first()
                if user is None:
                    raise InvalidInput(field="user", reason=f"user '{req.user}' does not exist")
                if not user.file_access:
                    raise InvalidInput(
                        field="user",
                        reason=f"user '{req.user}' has no file access; turn it on first "
                        f"(speicher user update {req.user} --file-access)",
                    )
                grant = s.scalars(
                    select(Grant).where(Grant.share_id == share_row.id, Grant.user_id == user.id)
                ).first() or Grant(share_id=share_row.id, user_id=user.id)
                who = f"user {req.user}"
            else:
                group = s.scalars(
                    select(Group).where(Group.name == req.group, Group.state == "ready")
                ).first()
                if group is None:
                    raise InvalidInput(field="group", reason=f"group '{req.group}' does not exist")
                grant = s.scalars(
                    select(Grant).where(Grant.share_id == share_row.id, Grant.group_id == group.id)
                ).first() or Grant(share_id=share_row.id, group_id=group.id)
                who = f"group {req.group}"
            saved = _saved(share_row)
            grant.access = req.access
            s.add(grant)
        self._apply_or_restore(share, saved)
        self.hooks.emit(SHARES_CHANGED)
        self.events.record("info", "share.granted", share, f"{who} may {req.access} {share}")
        return self.shares.get(share)

    def revoke(self, share: str, user: str | None = None, group: str | None = None) -> ShareInfo:
        if (user is None) == (group is None):
            raise InvalidInput(field="user", reason="name exactly one user or one group")
        with self.db.session() as s:
            share_row = self._share(s, share)
            saved = _saved(share_row)
            for grant in share_row.grants:
                if (user and grant.user and grant.user.name == user) or (
                    group and grant.group and grant.group.name == group
                ):
                    share_row.grants.remove(grant)
                    break
            else:
                # each a whole sentence: the web console translates reasons by their templates
                raise NotFound(
                    f"user '{user}' has no grant on share '{share}'"
                    if user
                    else f"group '{group}' has no grant on share '{share}'"
                )
        self._apply_or_restore(share, saved)
        self.hooks.emit(SHARES_CHANGED)
        self.events.record(
            "info",
            "share.revoked",
            share,
            f"{'user ' + user if user else 'group ' + str(group)} lost access to {share}",
        )
        return self.shares.get(share)

    def _apply_or_restore(self, share: str, saved: list[SavedGrant]) -> None:
        """Apply the new grants to the filesystem; if that fails, put the old grants back in
        the model too, so the model never says what the filesystem does not do."""
        try:
            self.apply(share)
        except BaseException:
            with self.db.session() as s:
                share_row = self._share(s, share)
                share_row.grants.clear()
                s.flush()
                for user_id, group_id, access in saved:
                    grant = Grant(user_id=user_id, group_id=group_id, access=access)
                    share_row.grants.append(grant)
            with contextlib.suppress(SpeicherError):
                self.apply(share)
            raise

    @staticmethod
    def _share(s: Session, name: str) -> Share:
        share = s.scalars(select(Share).where(Share.name == name)).first()
        if share is None:
            raise NotFound(f"share '{name}' does not exist")
        return share

    def apply(self, share: str, recursive: bool = True) -> None:
        """Make the share's ACLs match its grants: the top folder exactly, and (``recursive``)
        every file and folder inside for the entries that changed.

        POSIX lets a file's owner write it whatever the ACL says, so when a user's (or a
        group's) access becomes read-only, the owner write bit of their files is cleared too,
        and set again when it becomes read-write.
        Revoked users cannot reach the share at all: its top folder no longer lets them in."""
        path = self.shares.path(share)
        with self.db.session() as s:
            share_row = self._share(s, share)
            grants = share_row.grants
            wanted = desired_entries(share_row)
            members = {
                g.group.gid: [u.uid for u in g.group.members if u.uid is not None and u.file_access]
                for g in grants
                if g.group
            }
            quota = share_row.quota
        if not path.is_dir():
            return

        def write() -> None:
            current = acl.named_entries(path)
            if sorted(current, key=_key) != sorted(wanted, key=_key):
                acl.set_root(path, wanted)
            if not recursive:
                return
            wanted_keys = {(e.kind, e.qualifier) for e in wanted}
            removed = [e for e in current if (e.kind, e.qualifier) not in wanted_keys]
            changed = [e for e in wanted if e not in current]
            if removed or changed:
                acl.modify_tree(path, changed, removed)
            affected = set(_owners(changed, members))
            writers = set(_owners([e for e in wanted if e.perms == PERMS["rw"]], members))
            acl.set_owner_write(path, sorted(affected - writers), writable=False)
            acl.set_owner_write(path, sorted(affected & writers), writable=True)

        with translated(f"setting the permissions of share {share}"):
            _quota_lifted(path, quota, write)

    def apply_all(self, share_names: list[str] | None = None) -> None:
        """Re-apply ACLs of the given shares (all when None): after users or groups went."""
        with self.db.session() as s:
            names = share_names or list(s.scalars(select(Share.name)))
        for name in names:
            self.apply(name)
        self.hooks.emit(SHARES_CHANGED)

    def shares_of(self, user_id: int | None = None, group_id: int | None = None) -> list[str]:
        """Shares on which a user or group has a grant."""
        with self.db.session() as s:
            query = select(Share.name).join(Grant)
            if user_id is not None:
                query = query.where(Grant.user_id == user_id)
            if group_id is not None:
                query = query.where(Grant.group_id == group_id)
            return list(s.scalars(query))


def _owners(entries: list[acl.Entry], members: dict[int, list[int]]) -> list[int]:
    """The uids whose own files follow ``entries``: named users and the groups' members.
    A user's owner bits follow their widest access, direct or through any group."""
    uids = []
    for e in entries:
        uids += [e.qualifier] if e.kind == "user" else members.get(e.qualifier, [])
    return uids


def _key(entry: acl.Entry) -> tuple[str, int, str]:
    return (entry.kind, entry.qualifier, entry.perms)


def _saved(share: Share) -> list[SavedGrant]:
    return [(g.user_id, g.group_id, g.access) for g in share.grants]


def _quota_lifted(path: Path, quota: int | None, write: Callable[[], None]) -> None:
    """Run ``write``. ACLs are extended attributes: writing them on a share at its quota fails
    with EDQUOT, even for root. Permissions are the admin's business, not the users' data, so
    then the limit is lifted, ``write`` runs again, and the limit is put back at once."""
    try:
        write()
        return
    except CommandError as exc:
        if quota is None or "quota" not in exc.output.lower():
            raise
    btrfs.qgroup_limit(path, None)
    try:
        write()
    finally:
        btrfs.qgroup_limit(path, quota)
