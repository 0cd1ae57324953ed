"""Disaster recovery on the target: a replica becomes a writable share (docs/replication.md).

With each replica the source sends the share's record (``ShareRecord``): its description and
compression, its grants, and the names behind the uids and gids its files carry. Promoting
makes a writable share from the newest replica (a btrfs snapshot: no data is copied), gives
every file the owner of the same *name* on this box (root, or the users' primary group, where
this box has no such user or group: a number from another box must never become somebody
else's file here), removes the ACL entries the source's grants made (they name the source's
numbers too), and applies the grants whose users and groups exist here; the others are listed
in the answer's ``skipped``. A promote that fails deletes the share it was making.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select

from speicher.access import GrantService
from speicher.access.models import GrantRequest
from speicher.config import Settings
from speicher.db import Database, Group, Pool, ReplicationPairing, User
from speicher.errors import InvalidInput, NotFound, SpeicherError
from speicher.events import EventService
from speicher.replication import replicas
from speicher.replication.pairing import Peer
from speicher.replication.replicas import REPLICAS, replica_names, replicas_of
from speicher.storage import ShareService
from speicher.storage.models import Compression, ShareCreate
from speicher.system import acl, beneath
from speicher.system.accounts import gid_of
from speicher.validation import Name, Request

RECORD = "share.json"
# the SHA-256 of the record a target holds, in its answer to the list of replicas: a source
# whose record is the same sends none after the stream (most runs: grants change seldom)
RECORD_HEADER = "X-Speicher-Record"


class ShareRecord(Request):
    """What the target needs to know of the source's share to promote a replica of it.
    ``users`` and ``groups`` map uids and gids (JSON keys: decimal strings) to names."""

    description: str = Field("", max_length=256)
    compression: Compression = ""
    # "user:alice:rw", "group:finance:ro"
    grants: list[str] = Field(default_factory=list, max_length=10_000)
    users: dict[str, str] = Field(default_factory=dict, max_length=100_000)
    groups: dict[str, str] = Field(default_factory=dict, max_length=100_000)

    def ids(self, which: dict[str, str]) -> dict[int, str]:
        return {int(k): v for k, v in which.items() if k.isdigit()}


def record_of(db: Database, shares: ShareService, share: str) -> ShareRecord:
    """The source's record of ``share``."""
    info = shares.get(share, max_age=math.inf)  # its usage is not part of the record
    with db.session() as s:
        users = {u.uid: u.name for u in s.scalars(select(User)) if u.uid is not None}
        groups = {g.gid: g.name for g in s.scalars(select(Group))}
    return ShareRecord(
        description=info.description,
        compression=info.compression,
        grants=[f"{g.principal}:{g.name}:{g.access}" for g in info.grants],
        users={str(k): v for k, v in users.items()},
        groups={str(k): v for k, v in groups.items()},
    )


def record_digest(record: ShareRecord) -> str:
    """What :data:`RECORD_HEADER` says of a record: the SHA-256 of the JSON kept of it."""
    return hashlib.sha256(record.model_dump_json().encode()).hexdigest()


def kept_digest(folder: Path) -> str | None:
    """The :func:`record_digest` of the record kept in ``folder``, if there is one."""
    try:
        fd = os.open(folder / RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def keep_record(folder: Path, record: ShareRecord) -> None:
    """On the target, beside the replicas (root only, replaced whole)."""
    temp = folder / f".{RECORD}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(record.model_dump_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, folder / RECORD)


class PromoteRequest(Request):
    share: Name = Field(max_length=64, description="The replicated share.")
    source: Name | None = Field(
        None, max_length=64, description="The pairing it came from; needed when several sent it."
    )
    name: Name | None = Field(None, max_length=64, description="The new share; the same name.")
    snapshot: str | None = Field(None, max_length=64, description="The replica; the newest.")


class Promoted(BaseModel):
    share: str
    replica: str = Field(description="The replica it was made from.")
    source: str
    skipped: list[str] = Field(description="Grants whose users or groups this box lacks.")


class Promoter:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        shares: ShareService,
        grants: GrantService,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.shares = shares
        self.grants = grants

    def _sources(self, share: str) -> list[Peer]:
        with self.db.session() as s:
            rows = s.execute(
                select(ReplicationPairing.name, Pool.name).join(
                    Pool, Pool.id == ReplicationPairing.pool_id
                )
            ).all()
        found = []
        for name, pool in rows:
            peer = Peer(name=name, pool=pool)
            if replica_names(replicas_of(self.settings, peer, share)):
                found.append(peer)
        return found

    def promote(self, req: PromoteRequest) -> Promoted:
        sources = [p for p in self._sources(req.share) if req.source in (None, p.name)]
        if not sources:
            raise NotFound(f"no replica of share '{req.share}' is here")
        if len(sources) > 1:
            raise InvalidInput(
                field="source",
                reason=f"name the source: {', '.join(p.name for p in sources)} sent it",
            )
        peer = sources[0]
        folder = replicas_of(self.settings, peer, req.share)
        held = replica_names(folder)
        chosen = req.snapshot or held[-1]
        if chosen not in held:
            raise NotFound(f"no replica {chosen} of share '{req.share}' from {peer.name}")
        record = _read_record(folder)
        name = req.name or req.share
        info = self.shares.create(
            ShareCreate(
                name=name,
                pool=peer.pool,
                compression=record.compression,
                description=record.description or f"promoted from {peer.name}",
            ),
            from_snapshot=folder / chosen / chosen,
        )
        try:
            self._give_owners(Path(info.path), record)
            # the source's ACL entries name its uids and gids: none of them may stay
            source_entries = acl.named_entries(folder / chosen / chosen)
            if source_entries:
                acl.modify_tree(Path(info.path), [], source_entries)
            skipped = self._grant(name, record)
        except BaseException:
            with contextlib.suppress(SpeicherError):
                self.shares.delete(name)  # nothing half-made: no share without its owners
            raise
        replicas.note_promoted(folder, chosen, name)  # the base for sending it back later
        self.events.record(
            "info",
            "replication.promoted",
            name,
            f"share {name} made from replica {chosen} of {req.share} (from {peer.name})",
        )
        return Promoted(share=name, replica=chosen, source=peer.name, skipped=skipped)

    def _give_owners(self, top: Path, record: ShareRecord) -> None:
        with self.db.session() as s:
            uids = {u.name: u.uid for u in s.scalars(select(User)) if u.uid is not None}
            gids = {g.name: g.gid for g in s.scalars(select(Group))}
        users = {uid: uids.get(name, 0) for uid, name in record.ids(record.users).items()}
        groups = {gid: gids.get(name) for gid, name in record.ids(record.groups).items()}
        primary = gid_of(self.settings.primary_group)
        root = beneath.open_root(top)
        with beneath.opened(root):
            for node in beneath.walk(root):
                uid = users.get(node.st.st_uid, 0)
                gid = groups.get(node.st.st_gid) or primary
                if (uid, gid) == (node.st.st_uid, node.st.st_gid):
                    continue
                if node.parent is None:
                    os.chown(node.fd, uid, gid)
                else:
                    os.chown(node.name, uid, gid, dir_fd=node.parent, follow_symlinks=False)

    def _grant(self, share: str, record: ShareRecord) -> list[str]:
        skipped = []
        for text in record.grants:
            principal, _, rest = text.partition(":")
            name, _, access = rest.rpartition(":")
            if principal not in ("user", "group") or access not in ("rw", "ro") or not name:
                skipped.append(f"not a grant: {text!r}")
                continue
            try:
                who = {principal: name}
                self.grants.grant(share, GrantRequest(access=access, **who))
            except (NotFound, InvalidInput):  # no such user or group on this box
                skipped.append(f"{principal} {name} ({access})")
        self.grants.apply(share)  # the source's ACL entries go, this box's come
        return skipped


def _read_record(folder: Path) -> ShareRecord:
    try:
        return ShareRecord.model_validate(json.loads((folder / RECORD).read_text()))
    except (OSError, ValueError):
        return ShareRecord()


__all__ = ["REPLICAS", "PromoteRequest", "Promoted", "Promoter", "ShareRecord", "record_of"]
