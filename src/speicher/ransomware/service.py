"""Ransomware detection and response: the audit log's file records in, incidents out.

The detector (:mod:`speicher.ransomware.signals`) runs on one thread of its own, fed from
the audit log's subscription (a queue: no protocol waits for it). It reads a few KiB of a
file, never more, and never while a request waits. When an actor crosses a threshold the
response runs on another thread, at once:

1. the shares the user may write are noted (before the user is disabled: then there are none);
2. the user is disabled, which ends their SMB and SFTP sessions and refuses every new
   request over WebDAV, S3, SFTP, SMB and the console (:class:`UserService` and its hooks);
   first, because every second lets the malware touch more files;
3. a snapshot of each of those shares, locked for the share's ``lock_days``;
4. an incident row and a critical event (an alert condition until the user is released)
   naming the user, the client, the files that counted and the snapshots.

``resolve --restore`` rolls back only what the incident touched, from the newest snapshot
taken before it began, with the audit log as the list of what it touched (docs/ransomware.md);
``--release`` enables the user again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import queue
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from speicher.access.models import UserUpdate
from speicher.access.users import UserService
from speicher.audit.records import Record
from speicher.audit.service import AuditLog
from speicher.audit.store import Query
from speicher.config import Settings
from speicher.db import Database
from speicher.db.models import Incident, RansomwarePolicy, Share
from speicher.errors import Conflict, InvalidInput, NotFound, SpeicherError
from speicher.events import EventService
from speicher.faults import crash_point
from speicher.files import ShareFS
from speicher.hooks import SHARES_CHANGED, USER_CUT, Hooks
from speicher.protection.models import SnapshotInfo
from speicher.protection.restore import RestoreService
from speicher.protection.snapshots import SnapshotService
from speicher.ransomware import canary
from speicher.ransomware.models import (
    GuardInfo,
    GuardUpdate,
    IncidentInfo,
    ResolveRequest,
    RestoreResult,
)
from speicher.ransomware.signals import SAMPLE, WATCHED, Detector, Finding, Thresholds
from speicher.storage.models import ShareUpdate
from speicher.storage.shares import ShareService
from speicher.system import beneath

log = logging.getLogger(__name__)

REFRESH = 10.0  # seconds between re-reads of the shares and their policies
BUSY_PAUSE = 0.01  # seconds; see RansomwareService._next_records
NEWEST = 30.0  # seconds a share's newest snapshot is remembered
LISTED = 50  # touched files an incident's restore result lists at most


@dataclass(frozen=True)
class _Watch:
    """A share as the detector needs it."""

    pool: str
    thresholds: Thresholds | None  # None: not watched
    disable_user: bool
    read_only: bool
    lock_days: int


def _policy_info(share: str, p: RansomwarePolicy | None) -> GuardInfo:
    p = p or RansomwarePolicy(
        detect=True,
        canary=False,  # opt-in: docs/ransomware.md, "Canary files"
        window=60.0,
        renames=10,
        overwrites=10,
        deletes=10,
        disable_user=True,
        read_only=False,
        lock_days=7,
    )
    return GuardInfo(
        share=share,
        detect=p.detect,
        canary=p.canary,
        window=p.window,
        renames=p.renames,
        overwrites=p.overwrites,
        deletes=p.deletes,
        disable_user=p.disable_user,
        read_only=p.read_only,
        lock_days=p.lock_days,
    )


def _incident_info(row: Incident) -> IncidentInfo:
    return IncidentInfo(
        id=row.id,
        user=row.user,
        address=row.address,
        protocol=row.protocol,
        share=row.share,
        signal=row.signal,
        detail=row.detail,
        paths=json.loads(row.paths or "[]"),
        first_seen=row.first_seen,
        detected_at=row.detected_at,
        state=row.state,
        response=[line for line in row.response.split("\n") if line],
        user_disabled=row.user_disabled,
        snapshots=json.loads(row.snapshots or "{}"),
        read_only=json.loads(row.read_only or "[]"),
        restored_at=row.restored_at,
        restore=[RestoreResult(**r) for r in json.loads(row.restore_result or "[]")],
        released_at=row.released_at,
    )


class RansomwareService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        audit: AuditLog,
        users: UserService,
        files: ShareFS,
        shares: ShareService,
        snapshots: SnapshotService,
        restore: RestoreService,
        hooks: Hooks,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.audit = audit
        self.users = users
        self.files = files
        self.shares = shares
        self.snapshots = snapshots
        self.restorer = restore
        self.hooks = hooks
        self.detector = Detector(
            self._thresholds,
            lambda _share, path: canary.is_canary(path),
            self._canary_changed,
            self._sample_now,
            self._sample_before,
        )
        self._queue: queue.SimpleQueue[Record | None] = queue.SimpleQueue()
        self._watch: dict[str, _Watch] = {}
        self._read_at = 0.0
        self._changed = threading.Event()  # shares or policies changed: read them again
        self._newest: dict[str, tuple[float, Path | None]] = {}
        self._suspended: set[str] = set()  # users with an open incident: not counted again
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._responding: list[threading.Thread] = []
        hooks.subscribe(SHARES_CHANGED, self._shares_changed)

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        with self.db.session() as s:
            self._suspended = set(s.scalars(select(Incident.user).where(Incident.state == "open")))
        self._refresh()
        self._finish_interrupted()
        self._unsubscribe = self.audit.subscribe(self._take)
        self._thread = threading.Thread(target=self._run, name="ransomware", daemon=True)
        self._thread.start()

    def _finish_interrupted(self) -> None:
        """An incident recorded by a daemon that stopped before it responded (killed): the
        response now, from what the row says."""
        with self.db.session() as s:
            rows = [
                (
                    row.id,
                    Finding(
                        row.user,
                        row.address,
                        row.protocol,
                        row.share,
                        row.signal,
                        row.detail,
                        row.first_seen.timestamp(),
                        tuple(json.loads(row.paths or "[]")),
                    ),
                )
                for row in s.scalars(
                    select(Incident).where(Incident.state == "open", Incident.response == "")
                )
            ]
        for incident_id, finding in rows:
            log.warning("finishing the response to incident %d, cut short by a stop", incident_id)
            try:
                self._act(incident_id, finding)
            except Exception:
                log.exception("the response to incident %d failed", incident_id)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None
        for thread in self._responding:
            thread.join(30)

    def _shares_changed(self, **_: object) -> None:
        """A share made, changed or deleted: the thread reads the shares again."""
        self._changed.set()

    def _take(self, record: Record) -> None:
        """From the audit log's intake: keep it short."""
        if record.operation in WATCHED and record.outcome == "ok":
            self._queue.put(record)

    def _run(self) -> None:
        while True:
            try:
                records = self._next_records()
            except queue.Empty:
                self._refresh()
                continue
            for record in records:
                if record is None:
                    return
                self._look_at(record)
            if len(records) > 1:
                time.sleep(BUSY_PAUSE)

    def _next_records(self) -> list[Record | None]:
        """What waits: at least one record (queue.Empty after REFRESH without one). After a
        batch of more than one (records come fast) the thread pauses BUSY_PAUSE, so that the
        next batch is taken at once: waking for every record is a thread switch per file
        operation, which SMB's small-file writes felt (bench/audit_overhead.py). Detection
        is that much later, a hundredth of a second."""
        records = [self._queue.get(timeout=REFRESH)]
        with contextlib.suppress(queue.Empty):
            while len(records) < 10_000:
                records.append(self._queue.get_nowait())
        return records

    def _look_at(self, record: Record) -> None:
        if self._changed.is_set() or time.monotonic() - self._read_at > REFRESH:
            self._refresh()
        elif record.share not in self._watch and time.monotonic() - self._read_at > 1:
            self._refresh()  # a share made a moment ago
        if record.user in self._suspended:
            return
        try:
            finding = self.detector.observe(record)
        except Exception:
            log.exception("the ransomware detector failed on a record; it goes on")
            return
        if finding is not None:
            self._suspended.add(finding.user)
            self.detector.forget(finding.user)
            thread = threading.Thread(
                target=self._respond, args=(finding,), name="ransomware-response"
            )
            self._responding = [t for t in self._responding if t.is_alive()] + [thread]
            thread.start()

    def _refresh(self) -> None:
        """Read the shares and their policies again; place canaries that are missing."""
        self._changed.clear()
        self._read_at = time.monotonic()
        try:
            watch = self._read_watch()
        except Exception:
            log.exception("reading the shares' ransomware policies failed")
            return
        self._watch = watch
        for share, w in watch.items():
            if w.thresholds is not None and w.thresholds.canary:
                self._place(share, w.pool)

    def _read_watch(self) -> dict[str, _Watch]:
        with self.db.session() as s:
            rows = [
                (share.name, share.pool.name, _policy_info(share.name, policy))
                for share, policy in s.execute(
                    select(Share, RansomwarePolicy)
                    .outerjoin(RansomwarePolicy, RansomwarePolicy.share_id == Share.id)
                    .where(Share.state == "ready")
                    .options(selectinload(Share.pool))
                )
            ]
        watch = {}
        for name, pool, p in rows:
            thresholds = (
                Thresholds(p.window, p.renames, p.overwrites, p.deletes, p.canary)
                if p.detect
                else None
            )
            watch[name] = _Watch(pool, thresholds, p.disable_user, p.read_only, p.lock_days)
        return watch

    def _place(self, share: str, pool: str) -> None:
        top = self.settings.mount_root / pool / share
        try:
            with beneath.opened(beneath.open_root(top)) as fd:
                written = canary.place(fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EROFS):
                log.warning("placing the canary files in share %s failed: %s", share, exc)
            return
        if written:
            log.info("canary files placed in share %s: %s", share, ", ".join(written))

    # -- what the detector reads ------------------------------------------------------------------

    def _thresholds(self, share: str) -> Thresholds | None:
        w = self._watch.get(share)
        return w.thresholds if w is not None else None

    def _top(self, share: str) -> Path | None:
        w = self._watch.get(share)
        return self.settings.mount_root / w.pool / share if w is not None else None

    def _canary_changed(self, share: str, path: str) -> bool:
        top = self._top(share)
        if top is None:
            return False
        try:
            with beneath.opened(beneath.open_root(top)) as fd:
                return canary.changed(fd, path)
        except OSError:
            return False

    def _sample_now(self, share: str, path: str) -> bytes | None:
        top = self._top(share)
        return _head(top, path) if top is not None else None

    def _sample_before(self, share: str, path: str) -> bytes | None:
        newest = self._newest_snapshot(share)
        return _head(newest, path) if newest is not None else None

    def _newest_snapshot(self, share: str) -> Path | None:
        cached = self._newest.get(share)
        if cached is not None and time.monotonic() - cached[0] < NEWEST:
            return cached[1]
        newest: Path | None = None
        with contextlib.suppress(OSError):
            folder = self.snapshots.directory(share)
            names = sorted(n for n in os.listdir(folder) if n.startswith("@GMT-"))
            newest = folder / names[-1] if names else None
        self._newest[share] = (time.monotonic(), newest)
        return newest

    # -- the response -----------------------------------------------------------------------------

    def _respond(self, finding: Finding) -> None:
        try:
            self.respond(finding)
        except Exception:
            log.exception("the response to suspected ransomware of %s failed", finding.user)
            self.events.record(
                "critical",
                "ransomware.detected",
                finding.user,
                f"ransomware suspected: user {finding.user} from {finding.address or '?'} "
                f"on share {finding.share} ({finding.detail}); the automatic response failed, "
                "disable the user by hand",
            )

    def respond(self, finding: Finding) -> IncidentInfo:
        """Record the incident, cut the user off, snapshot their shares, raise the alert."""
        with self.db.session() as s:
            row = Incident(
                user=finding.user,
                address=finding.address,
                protocol=finding.protocol,
                share=finding.share,
                signal=finding.signal,
                detail=finding.detail,
                paths=json.dumps(list(finding.paths)),
                changes=json.dumps(finding.changes),
                first_seen=dt.datetime.fromtimestamp(finding.first, dt.UTC),
                detected_at=dt.datetime.now(dt.UTC),
            )
            s.add(row)
            s.flush()
            incident_id = row.id
        crash_point("ransomware.recorded")
        return self._act(incident_id, finding)

    def _act(self, incident_id: int, finding: Finding) -> IncidentInfo:
        watch = self._watch.get(finding.share)
        cut = watch is None or watch.disable_user
        if cut:
            # at once: disabling takes a moment longer (smbd's account and session list are
            # asked through subprocesses first), in which an attack goes on file by file
            _end_smb_session(finding.session)
            self.hooks.emit(USER_CUT, name=finding.user)
        writable = sorted({finding.share} | self._writable(finding.user))
        disabled, response = self._cut_off(finding.user) if cut else (False, [])
        if not cut:
            response.append(f"user {finding.user} left enabled (the share's policy)")
        taken, frozen, done = self._protect(writable)
        response += done
        first = dt.datetime.fromtimestamp(finding.first, dt.UTC)
        with contextlib.suppress(SpeicherError, OSError):
            pre = self.before(finding.share, first)
            response.append(
                f"files to restore are in snapshot {pre.name} of {finding.share}"
                if pre is not None
                else f"share {finding.share} has no snapshot from before the incident"
            )
        with self.db.session() as s:
            row = s.get_one(Incident, incident_id)
            row.user_disabled = disabled
            row.snapshots = json.dumps(taken)
            row.read_only = json.dumps(frozen)
            row.response = "\n".join(response)
        files = ", ".join(finding.paths[:5]) + (" ..." if len(finding.paths) > 5 else "")
        self.events.record(
            "critical",
            "ransomware.detected",
            finding.user,
            f"ransomware suspected (incident {incident_id}): user {finding.user} from "
            f"{finding.address or 'this server'} over {finding.protocol} on share "
            f"{finding.share}: {finding.detail} ({files}). "
            + "; ".join(response)
            + f". Restore: 'speicher ransomware resolve {incident_id} --restore'",
        )
        return self.incident(incident_id)

    def _cut_off(self, user: str) -> tuple[bool, list[str]]:
        """Disable ``user``: their SMB and SFTP sessions end, every new request is refused."""
        try:
            self.users.update(user, UserUpdate(enabled=False), guard=False)
        except SpeicherError as exc:
            return False, [f"user {user} could not be disabled: {exc.message}"]
        return True, [
            f"user {user} disabled: their SMB and SFTP sessions were ended, every new login "
            "and request refused"
        ]

    def _protect(self, shares: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
        """A locked snapshot of each share, and read-only those whose policy says so."""
        response: list[str] = []
        taken: dict[str, str] = {}
        for share in shares:
            w = self._watch.get(share)
            days = min(w.lock_days if w else 7, self.settings.max_lock_days)
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None
            try:
                taken[share] = self.snapshots.create(share, locked_until=until).name
            except (SpeicherError, OSError) as exc:
                response.append(f"no snapshot of share {share}: {exc}")
        frozen = [s for s in shares if (w := self._watch.get(s)) is not None and w.read_only]
        for share in frozen:
            try:
                self.shares.update(share, ShareUpdate(read_only=True))
            except SpeicherError as exc:
                response.append(f"share {share} could not be made read-only: {exc.message}")
        if frozen:
            response.append("made read-only for everyone: " + ", ".join(frozen))
        if taken:
            response.append(
                "snapshots taken: "
                + ", ".join(f"{share} {name}" for share, name in sorted(taken.items()))
            )
        return taken, frozen, response

    def _writable(self, user: str) -> set[str]:
        try:
            return {name for name, access in self.files.shares(user) if access == "rw"}
        except Exception:
            log.exception("the shares of %s could not be read", user)
            return set()

    # -- incidents ----------------------------------------------------------------------------

    def incidents(self, state: str | None = None) -> list[IncidentInfo]:
        with self.db.session() as s:
            q = select(Incident).order_by(Incident.id.desc())
            if state is not None:
                q = q.where(Incident.state == state)
            return [_incident_info(row) for row in s.scalars(q)]

    def incident(self, incident_id: int) -> IncidentInfo:
        with self.db.session() as s:
            return _incident_info(self._incident(s, incident_id))

    @staticmethod
    def _incident(s: Session, incident_id: int) -> Incident:
        row = s.get(Incident, incident_id)
        if row is None:
            raise NotFound(f"no ransomware incident {incident_id}")
        return row

    def resolve(self, incident_id: int, req: ResolveRequest) -> IncidentInfo:
        if not req.restore and not req.release:
            raise InvalidInput(field="restore", reason="say restore, release or both")
        info = self.incident(incident_id)
        if req.restore and info.restored_at is not None:
            raise Conflict(f"the files of incident {incident_id} were restored already")
        if req.release and info.state != "open":
            raise Conflict(f"incident {incident_id} is resolved already")
        if req.restore:
            results = self._restore(info)
            with self.db.session() as s:
                row = self._incident(s, incident_id)
                row.restored_at = dt.datetime.now(dt.UTC)
                row.restore_result = json.dumps([r.model_dump() for r in results])
            restored = sum(r.restored for r in results)
            removed = sum(r.removed for r in results)
            self.events.record(
                "warning",
                "ransomware.restored",
                info.user,
                f"incident {incident_id}: {restored} files restored, {removed} removed",
            )
        if req.release:
            if info.user_disabled:
                with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to enable
                    self.users.update(info.user, UserUpdate(enabled=True))
            for share in info.read_only:
                with contextlib.suppress(NotFound):
                    self.shares.update(share, ShareUpdate(read_only=False))
            with self.db.session() as s:
                row = self._incident(s, incident_id)
                row.state = "resolved"
                row.released_at = dt.datetime.now(dt.UTC)
                still = s.scalar(
                    select(Incident.id).where(Incident.user == info.user, Incident.state == "open")
                )
            if still is None:
                self._suspended.discard(info.user)
            self.events.record(
                "info",
                "ransomware.released",
                info.user,
                f"incident {incident_id} resolved; user {info.user} "
                + ("enabled again" if info.user_disabled else "was not disabled"),
            )
        return self.incident(incident_id)

    # -- policies -----------------------------------------------------------------------------

    def policy(self, share: str) -> GuardInfo:
        with self.db.session() as s:
            row = self._share(s, share)
            return _policy_info(row.name, s.get(RansomwarePolicy, row.id))

    def update_policy(self, share: str, req: GuardUpdate) -> GuardInfo:
        with self.db.session() as s:
            row = self._share(s, share)
            name, pool = row.name, row.pool.name
            policy = s.get(RansomwarePolicy, row.id)
            current = _policy_info(name, policy)
            if policy is None:
                policy = RansomwarePolicy(share_id=row.id)
                s.add(policy)
            for key, value in current.model_dump(exclude={"share"}).items():
                changed = getattr(req, key)
                setattr(policy, key, value if changed is None else changed)
            watched = policy.detect and policy.canary
        if watched:  # placed now: the setting's answer can say they are there
            self._place(name, pool)
        else:  # no longer watched: no canaries left behind for users to wonder at
            with (
                contextlib.suppress(OSError),
                beneath.opened(beneath.open_root(self.settings.mount_root / pool / name)) as fd,
            ):
                canary.remove(fd)
        self._changed.set()
        self.events.record(
            "info", "ransomware.policy", name, f"ransomware policy of {name} changed"
        )
        return self.policy(name)

    @staticmethod
    def _share(s: Session, share: str) -> Share:
        row = s.scalars(select(Share).where(Share.name == share.lower())).first()
        if row is None or row.state != "ready":
            raise NotFound(f"no share named '{share}'")
        return row

    # -- restoring ----------------------------------------------------------------------------

    def _restore(self, info: IncidentInfo) -> list[RestoreResult]:
        """Put back what the incident touched, share by share (docs/ransomware.md)."""
        self.audit.flush()
        w = self._watch.get(info.share)
        window = w.thresholds.window if w and w.thresholds else 60.0
        since = info.first_seen.timestamp() - window
        with self.db.session() as s:  # what an earlier incident of the user touched is its own
            earlier = s.scalar(
                select(func.max(Incident.detected_at)).where(
                    Incident.user == info.user, Incident.id < info.id
                )
            )
        if earlier is not None:
            since = max(since, earlier.timestamp())
        until = (info.released_at or dt.datetime.now(dt.UTC)).timestamp()
        mine = list(
            self.audit.export(Query(user=info.user, since=since, until=until, category="file"))
        )
        with self.db.session() as s:
            changes = json.loads(self._incident(s, info.id).changes or "[]")
        logged = {(r.operation, r.path, r.target) for r in mine}
        mine += [  # what the detector saw and the audit log may have lost (a kill -9)
            Record(t, "file", info.protocol, info.user, info.address, info.share, op, path, target)
            for t, op, path, target in changes
            if (op, path, target) not in logged
        ]
        mine.sort(key=lambda r: r.time)
        results = []
        for share in sorted({r.share for r in mine if r.share}):
            ops = [r for r in mine if r.share == share]
            results.append(self._restore_share(share, info, ops, since))
            with (
                contextlib.suppress(SpeicherError, OSError),
                beneath.opened(beneath.open_root(self.shares.path(share))) as fd,
            ):
                canary.place(fd, replace=True)
        return results

    def before(self, share: str, when: dt.datetime) -> SnapshotInfo | None:
        """The newest snapshot of ``share`` taken before ``when`` (in an earlier second:
        names have seconds, a snapshot of the same second may be younger), and not by an
        incident's response: that one holds what an attack had done by then."""
        with self.db.session() as s:
            taken = [
                json.loads(t or "{}").get(share) for t in s.scalars(select(Incident.snapshots))
            ]
        earlier = [
            snap
            for snap in self.snapshots.list(share)
            if snap.time + dt.timedelta(seconds=1) <= when and snap.name not in taken
        ]
        return max(earlier, key=lambda snap: snap.time) if earlier else None

    def _restore_share(
        self, share: str, info: IncidentInfo, ops: list[Record], since: float
    ) -> RestoreResult:
        """The files of ``share`` that ``ops`` (the user's, from ``since`` on) touched, as the
        newest snapshot before the incident has them. Changes older than that snapshot are
        in it already; those are not looked at."""
        snap = self.before(share, info.first_seen)
        if snap is not None:
            since = max(since, snap.time.timestamp())
            ops = [r for r in ops if r.time >= since]
        originals, created, folders = _touched(ops)
        others = self._later_changes(share, info.user, since)
        if snap is None:
            touched = sorted(set(originals) | set(created))
            return RestoreResult(
                share=share, snapshot=None, restored=0, removed=0, kept=[],
                missing=touched[:LISTED],
            )  # fmt: skip
        kept: list[str] = []
        missing: list[str] = []
        restored = removed = 0
        done: set[str] = set()
        with _opened(snap.path) as snap_top, _opened(self.shares.path(share)) as live_top:
            for path in sorted(set(originals) | set(created), key=lambda p: (p.count("/"), p)):
                if canary.is_canary(path) or any(path.startswith(d + "/") for d in done):
                    continue
                last = max(originals.get(path, 0.0), created.get(path, 0.0))
                if others.get(path, 0.0) > last:
                    kept.append(path)
                    continue
                if _exists(snap_top, path):
                    restore_at = _shallowest_missing(live_top, path)
                    self.restorer.restore(
                        share, snap.name, restore_at.lstrip("/"), "original", safety=False
                    )
                    done.add(restore_at)
                    restored += 1
                elif path in created:
                    removed += _remove_file(live_top, path)
                else:
                    missing.append(path)
            for folder in sorted(folders, key=lambda p: -p.count("/")):
                if not _exists(snap_top, folder):
                    with contextlib.suppress(OSError):
                        parent, name = _split(folder)
                        with beneath.opened(beneath.open_dir(live_top, parent)) as fd:
                            os.rmdir(name, dir_fd=fd)  # only if empty: no one's file lost
        return RestoreResult(
            share=share,
            snapshot=snap.name,
            restored=restored,
            removed=removed,
            kept=kept[:LISTED],
            missing=missing[:LISTED],
        )

    def _later_changes(self, share: str, user: str, since: float) -> dict[str, float]:
        """The paths of ``share`` that others changed since ``since``, and when they last did."""
        latest: dict[str, float] = {}
        for r in self.audit.export(Query(share=share, since=since, category="file")):
            if r.user == user or r.operation == "read":
                continue
            for path in (r.path, r.target):
                if path:
                    latest[path] = max(latest.get(path, 0.0), r.time)
        return latest


def _touched(ops: list[Record]) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """What the records changed: files that were there before (path -> the last change),
    files they made (the same), folders they made."""
    originals: dict[str, float] = {}
    created: dict[str, float] = {}
    folders: list[str] = []
    for r in ops:
        if r.operation in ("open_write", "delete", "set_permission"):
            originals[r.path] = r.time
        elif r.operation == "rename":
            originals[r.path] = r.time
            created[r.target] = r.time
        elif r.operation in ("create", "copy"):
            created[r.target if r.operation == "copy" else r.path] = r.time
        elif r.operation == "mkdir":
            folders.append(r.path)
    return originals, created, folders


# -- file helpers (root, beneath a share, never following a link) -------------------------------


def _end_smb_session(session: str) -> None:
    """End the smbd process ``session`` names (``smbd <pid>``, from its audit line), if it is
    still an smbd: the user's sessions all end a moment later, when they are disabled."""
    name, _, pid = session.partition(" ")
    if name != "smbd" or not pid.isdigit():
        return
    with contextlib.suppress(OSError):
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        if comm.startswith("smbd"):
            os.kill(int(pid), signal.SIGTERM)


def _split(path: str) -> tuple[str, str]:
    p = PurePosixPath(path.lstrip("/"))
    return str(p.parent), p.name


@contextlib.contextmanager
def _opened(path: str | Path) -> Iterator[int]:
    with beneath.opened(beneath.open_root(path)) as fd:
        yield fd


def _head(top: Path, path: str) -> bytes | None:
    """The first SAMPLE bytes of the regular file ``path`` in ``top``; None when it is not
    there (or not a regular file)."""
    parent, name = _split(path)
    try:
        with _opened(top) as root, beneath.opened(beneath.open_dir(root, parent)) as folder:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=folder)  # fmt: skip
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                return os.pread(fd, SAMPLE, 0)
            finally:
                os.close(fd)
    except OSError:
        return None


def _exists(top: int, path: str) -> bool:
    parent, name = _split(path)
    try:
        with beneath.opened(beneath.open_dir(top, parent)) as folder:
            return beneath.lstat(folder, name) is not None
    except OSError:
        return False


def _shallowest_missing(live_top: int, path: str) -> str:
    """``path``, or its highest folder that is gone from the live share (deleted with it):
    what must be restored as a whole."""
    parts = PurePosixPath(path.lstrip("/")).parts
    for i in range(1, len(parts)):
        if not _exists(live_top, "/".join(parts[:i])):
            return "/" + "/".join(parts[:i])
    return path


def _remove_file(live_top: int, path: str) -> int:
    parent, name = _split(path)
    try:
        with beneath.opened(beneath.open_dir(live_top, parent)) as folder:
            st = beneath.lstat(folder, name)
            if st is None or not stat.S_ISREG(st.st_mode):
                return 0
            os.unlink(name, dir_fd=folder)
            return 1
    except OSError:
        return 0


__all__ = ["RansomwareService"]
