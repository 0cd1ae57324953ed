"""Snapshot policies: a share's snapshots on a cron schedule, pruned by retention rules, and
optionally locked (immutable) for some days. The daemon's scheduler calls ``run_due``."""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from speicher import schedule
from speicher.config import Settings
from speicher.db import Database, Share, SnapshotMeta, SnapshotPolicy
from speicher.errors import Conflict, Forbidden, NotFound, SpeicherError, Validator
from speicher.events import EventService
from speicher.protection.models import PolicyCreate, PolicyInfo, PolicyUpdate, SnapshotInfo
from speicher.protection.retention import Rules, keep
from speicher.protection.snapshots import FORMAT, SnapshotService, now_utc, parse_name
from speicher.storage import ShareService

log = logging.getLogger(__name__)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def rules_of(policy: SnapshotPolicy) -> Rules:
    return Rules(
        last=policy.keep_last,
        hourly=policy.keep_hourly,
        daily=policy.keep_daily,
        weekly=policy.keep_weekly,
        monthly=policy.keep_monthly,
    )


class PolicyService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        shares: ShareService,
        snapshots: SnapshotService,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.shares = shares
        self.snapshots = snapshots
        # policies whose stored schedule cannot be evaluated, with that schedule: told once
        self._unschedulable: dict[int, str] = {}

    @staticmethod
    def _row(s: Session, share: str, name: str) -> SnapshotPolicy:
        policy = s.scalars(
            select(SnapshotPolicy)
            .join(Share)
            .where(Share.name == share, SnapshotPolicy.name == name)
        ).first()
        if policy is None:
            raise NotFound(f"share '{share}' has no snapshot policy '{name}'")
        return policy

    @staticmethod
    def _info(p: SnapshotPolicy) -> PolicyInfo:
        """A policy as shown; one whose stored schedule cannot be evaluated (saved before such
        schedules were refused, or edited in the database) is shown with its problem, so a
        listing never fails for one bad row."""
        next_run, problem = None, ""
        try:
            following = schedule.following(p.schedule, now_utc())
            next_run = following if p.enabled else None
        except schedule.Unschedulable as exc:
            problem = f"its schedule '{p.schedule}' {exc}; set another one"
        return PolicyInfo(
            share=p.share.name,
            name=p.name,
            schedule=p.schedule,
            keep_last=p.keep_last,
            keep_hourly=p.keep_hourly,
            keep_daily=p.keep_daily,
            keep_weekly=p.keep_weekly,
            keep_monthly=p.keep_monthly,
            lock_days=p.lock_days,
            enabled=p.enabled,
            last_run_at=p.last_run_at,
            next_run_at=next_run,
            problem=problem,
        )

    def list(self, share: str | None = None) -> builtins.list[PolicyInfo]:
        with self.db.session() as s:
            query = select(SnapshotPolicy).join(Share).order_by(Share.name, SnapshotPolicy.name)
            if share:
                self.shares.get(share)
                query = query.where(Share.name == share)
            return [self._info(p) for p in s.scalars(query)]

    def get(self, share: str, name: str) -> PolicyInfo:
        with self.db.session() as s:
            return self._info(self._row(s, share, name))

    def create(self, share: str, req: PolicyCreate) -> PolicyInfo:
        v = Validator()
        if not _NAME.fullmatch(req.name):
            v.add("name", "must be 1-63 lower-case letters, digits, '_' and '-'")
        if reason := schedule.check(req.schedule):
            v.add("schedule", reason)
        if req.lock_days > self.settings.max_lock_days:
            v.add("lock_days", f"may be at most {self.settings.max_lock_days} (max_lock_days)")
        if not Rules(
            req.keep_last, req.keep_hourly, req.keep_daily, req.keep_weekly, req.keep_monthly
        ).keeps_anything():
            v.add("keep_last", "keep at least one snapshot (keep_last, _hourly, _daily, ...)")
        v.check()
        self.shares.get(share)
        try:
            with self.db.session() as s:
                share_id = s.scalars(select(Share.id).where(Share.name == share)).one()
                s.add(SnapshotPolicy(share_id=share_id, **req.model_dump()))
        except IntegrityError:
            raise Conflict(f"share '{share}' already has a policy '{req.name}'") from None
        self.events.record(
            "info",
            "policy.created",
            share,
            f"snapshot policy {req.name} of {share}: {req.schedule}",
        )
        return self.get(share, req.name)

    def update(self, share: str, name: str, req: PolicyUpdate) -> PolicyInfo:
        v = Validator()
        if req.schedule is not None and (reason := schedule.check(req.schedule)):
            v.add("schedule", reason)
        if req.lock_days is not None and req.lock_days > self.settings.max_lock_days:
            v.add("lock_days", f"may be at most {self.settings.max_lock_days} (max_lock_days)")
        v.check()
        with self.db.session() as s:
            policy = self._row(s, share, name)
            for field, value in req.model_dump(exclude_none=True).items():
                setattr(policy, field, value)
            if not rules_of(policy).keeps_anything():
                raise Forbidden("a policy must keep at least one snapshot")
        return self.get(share, name)

    def delete(self, share: str, name: str) -> None:
        """Delete a policy; its snapshots stay (and keep their locks)."""
        with self.db.session() as s:
            s.delete(self._row(s, share, name))
        self.events.record("info", "policy.deleted", share, f"snapshot policy {name} deleted")

    # -- running -------------------------------------------------------------------------------

    def run(self, share: str, name: str, now: dt.datetime | None = None) -> builtins.list[str]:
        """Take the policy's snapshot now, then prune its old ones; return what was pruned."""
        now = now or now_utc()
        with self.db.session() as s:
            policy = self._row(s, share, name)
            policy_id, lock_days, rules = policy.id, policy.lock_days, rules_of(policy)
            policy.last_run_at = now
        snap_name = now.strftime(FORMAT)
        if not any(x.name == snap_name for x in self.snapshots.list(share)):
            until = now + dt.timedelta(days=lock_days) if lock_days else None
            self.snapshots.create(share, snap_name, locked_until=until, policy_id=policy_id)
        return self.prune(share, policy_id, rules, now)

    def prune(
        self, share: str, policy_id: int, rules: Rules, now: dt.datetime
    ) -> builtins.list[str]:
        """Delete the policy's snapshots its rules no longer keep; locked ones stay."""
        with self.db.session() as s:
            names = list(
                s.scalars(select(SnapshotMeta.name).where(SnapshotMeta.policy_id == policy_id))
            )
        times = {parse_name(n): n for n in names if parse_name(n) is not None}
        kept = keep([t for t in times if t is not None], rules)
        pruned: builtins.list[str] = []
        for time, snap in sorted(times.items(), key=lambda kv: kv[1]):
            if time in kept:
                continue
            try:
                self.snapshots.delete(share, snap, now=now)
            except Forbidden:
                continue  # locked: retention waits for the lock to end
            except NotFound:
                self._forget(policy_id, snap)
                continue
            pruned.append(snap)
        return pruned

    def _forget(self, policy_id: int, name: str) -> None:
        with self.db.session() as s:
            for meta in s.scalars(
                select(SnapshotMeta).where(
                    SnapshotMeta.policy_id == policy_id, SnapshotMeta.name == name
                )
            ):
                s.delete(meta)

    def run_due(self, now: dt.datetime | None = None) -> builtins.list[SnapshotInfo]:
        """Run every enabled policy whose time has come; after downtime, once (no burst). Each
        policy is on its own: one that fails, however, is an error event (so an alert) and the
        others still run."""
        now = now or now_utc()
        taken = []
        for share, name in self._due(now):
            try:
                self.run(share, name, now)
                taken += [
                    x for x in self.snapshots.list(share) if x.time == now.replace(microsecond=0)
                ]
            except SpeicherError as exc:
                self._failed(share, name, f"failed: {exc.message}")
            except Exception:
                log.exception("snapshot policy %s of %s failed", name, share)
                self._failed(share, name, "failed: internal error; see the daemon's log")
        return taken

    def _due(self, now: dt.datetime) -> builtins.list[tuple[str, str]]:
        """The enabled policies whose time has come, as (share, policy). A policy whose stored
        schedule cannot be evaluated is told once (until its schedule changes) and skipped."""
        with self.db.session() as s:
            rows = [
                (p.id, p.share.name, p.name, p.schedule, p.last_run_at, p.created_at)
                for p in s.scalars(select(SnapshotPolicy).where(SnapshotPolicy.enabled.is_(True)))
            ]
        due = []
        for policy_id, share, name, cron, last_run, created in rows:
            try:
                if schedule.due(cron, last_run, created, now):
                    due.append((share, name))
            except schedule.Unschedulable as exc:
                if self._unschedulable.get(policy_id) != cron:
                    self._unschedulable[policy_id] = cron
                    self._failed(
                        share,
                        name,
                        f"cannot run: its schedule '{cron}' {exc}; set another one with "
                        f"`speicher policy update {share} {name} --schedule ...`",
                    )
                continue
            self._unschedulable.pop(policy_id, None)
        return due

    def _failed(self, share: str, name: str, what: str) -> None:
        self.events.record(
            "error", "policy.failed", share, f"snapshot policy {name} of {share} {what}"
        )
