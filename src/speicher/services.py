"""The service layer, built once: every front end (API, CLI through the API, scheduler) uses it."""

from __future__ import annotations

from dataclasses import dataclass

from speicher.access import (
    GrantService,
    GroupService,
    KeyService,
    S3KeyService,
    TokenService,
    UserService,
)
from speicher.access.s3keys import Sealer
from speicher.access.totp import TotpService
from speicher.audit.service import AuditLog
from speicher.backup.targets import BackupTargets
from speicher.backup.tasks import BackupTasks
from speicher.config import Settings
from speicher.db import Database
from speicher.events import EventService
from speicher.events.alerts import AlertService
from speicher.files import ShareFS
from speicher.hooks import Hooks
from speicher.jobs import JobService
from speicher.metrics.counters import ProtocolCounters
from speicher.preferences import PreferencesService
from speicher.protection import DiskHealthService, PolicyService, ScrubService, SnapshotService
from speicher.protection.restore import RestoreService
from speicher.protocols.s3 import versions as s3versions
from speicher.protocols.sftp import SftpService
from speicher.protocols.smb import SmbService
from speicher.ransomware.service import RansomwareService
from speicher.replication import replicas
from speicher.replication.pairing import Pairings, Targets
from speicher.replication.promote import Promoter
from speicher.replication.tasks import ReplicationTasks
from speicher.replication.transfer import Replicator
from speicher.storage import DiskService, PoolService, ShareService


@dataclass
class Services:
    settings: Settings
    db: Database
    events: EventService
    jobs: JobService
    disks: DiskService
    pools: PoolService
    shares: ShareService
    grants: GrantService
    users: UserService
    groups: GroupService
    tokens: TokenService
    keys: KeyService
    s3_keys: S3KeyService
    totp: TotpService
    snapshots: SnapshotService
    policies: PolicyService
    restore: RestoreService
    scrubs: ScrubService
    health: DiskHealthService
    alerts: AlertService
    smb: SmbService
    preferences: PreferencesService
    pairings: Pairings
    targets: Targets
    replicator: Replicator
    replication_tasks: ReplicationTasks
    promoter: Promoter
    backup_targets: BackupTargets
    backup_tasks: BackupTasks
    files: ShareFS
    audit: AuditLog
    ransomware: RansomwareService
    sftp: SftpService
    hooks: Hooks
    counters: ProtocolCounters  # the protocols' request counts (/metrics)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.db_url)
        hooks = Hooks()
        events = EventService(db)
        jobs = JobService(db, events)
        disks = DiskService(settings, db, events)
        pools = PoolService(settings, db, events, jobs, disks, hooks)
        shares = ShareService(settings, db, events, pools, hooks)
        grants = GrantService(db, events, shares, hooks)
        users = UserService(settings, db, events, grants, hooks)
        snapshots = SnapshotService(settings, db, events, shares, hooks)
        files = ShareFS(settings, db, usage=shares.used)
        s3versions.register_vetoes(hooks, shares, files)  # no share deleted while S3 locks last
        replicas.register_vetoes(hooks, settings)  # no pool destroyed while a replica is locked
        keys = KeyService(db, events)
        targets = Targets(db, events, Sealer(settings.state_dir))
        replicator = Replicator(settings, events, jobs, shares, snapshots, targets)
        restore = RestoreService(settings, events, shares, snapshots, grants)
        backup_targets = BackupTargets(settings, db, events, Sealer(settings.state_dir))
        audit = AuditLog(settings, events)
        smb = SmbService(settings, db, events, hooks, users)
        if settings.audit_files:
            smb.attach_audit(audit.add)
        ransomware = RansomwareService(
            settings, db, events, audit, users, files, shares, snapshots, restore, hooks
        )
        counters = ProtocolCounters()
        return cls(
            settings=settings,
            db=db,
            events=events,
            jobs=jobs,
            disks=disks,
            pools=pools,
            shares=shares,
            grants=grants,
            users=users,
            snapshots=snapshots,
            policies=PolicyService(settings, db, events, shares, snapshots),
            restore=restore,
            scrubs=ScrubService(settings, db, events, jobs, pools),
            health=DiskHealthService(settings, db, events, pools, disks),
            alerts=AlertService(db, events),
            smb=smb,
            preferences=PreferencesService(db, events),
            pairings=Pairings(db, events),
            targets=targets,
            replicator=replicator,
            replication_tasks=ReplicationTasks(db, events, jobs, snapshots, replicator),
            promoter=Promoter(settings, db, events, shares, grants),
            backup_targets=backup_targets,
            backup_tasks=BackupTasks(settings, db, events, jobs, shares, restore, backup_targets),
            files=files,
            audit=audit,
            ransomware=ransomware,
            sftp=SftpService(settings, db, events, users, files, hooks, keys, counters),
            hooks=hooks,
            groups=GroupService(settings, db, events, grants),
            tokens=TokenService(db, events),
            keys=keys,
            s3_keys=S3KeyService(settings.state_dir, db, events),
            totp=TotpService(settings.state_dir, db, events),
            counters=counters,
        )
