"""Speicher's configuration model. Data lives in the filesystem; this is what we were told."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    pass


class VirtualDisk(Base):
    """A sparse file in the state directory, attached to a loop device while the daemon runs."""

    __tablename__ = "virtual_disks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Pool(Base):
    """A btrfs filesystem over one or more disks (through md RAID for raid5/raid6)."""

    __tablename__ = "pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    profile: Mapped[str] = mapped_column(String(16))
    uuid: Mapped[str] = mapped_column(String(36), default="")
    md_uuid: Mapped[str] = mapped_column(String(64), default="")
    # creating -> ready -> destroying; a row left in creating/destroying is finished at start
    state: Mapped[str] = mapped_column(String(16), default="creating")
    scrub_schedule: Mapped[str] = mapped_column(
        String(64), default="0 3 1 * *", server_default="0 3 1 * *"
    )
    last_scrub_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    disks: Mapped[list[PoolDisk]] = relationship(
        back_populates="pool", cascade="all, delete-orphan", order_by="PoolDisk.id"
    )
    shares: Mapped[list[Share]] = relationship(back_populates="pool", order_by="Share.name")


class PoolDisk(Base):
    """A disk that belongs to a pool: a virtual disk's name or a block device path."""

    __tablename__ = "pool_disks"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"))
    disk: Mapped[str] = mapped_column(String(4096), unique=True)
    # btrfs's device id: what identifies a member, also when its disk is missing (null for md)
    devid: Mapped[int | None] = mapped_column(Integer, nullable=True)

    pool: Mapped[Pool] = relationship(back_populates="disks")


class Share(Base):
    """A btrfs subvolume of a pool, offered under one name on every protocol."""

    __tablename__ = "shares"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    # creating -> ready -> deleting: the intent is recorded first, so a start after a crash
    # finishes or undoes what was half done
    state: Mapped[str] = mapped_column(String(16), default="creating", server_default="ready")
    description: Mapped[str] = mapped_column(String(256), default="")
    quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    compression: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # SMB (Samba) options of the share
    smb_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    smb_browseable: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    smb_abe: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    smb_recycle: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    smb_recycle_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    smb_fruit: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    smb_time_machine: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    smb_time_machine_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    smb_encrypt: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    smb_guest: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # the other file protocols: offered or not (their servers read these)
    webdav_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    sftp_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # when a whole-file write over ShareFS reaches the disk: "always" (before the client hears
    # of it) or "standard" (with the pool's next commit; docs/files.md, Durability)
    write_sync: Mapped[str] = mapped_column(String(16), default="always", server_default="always")
    # the audit log records reads of this share's files too (writes always)
    audit_reads: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # nobody may change its files, whatever their grants (an admin's switch; ransomware's
    # response may turn it on)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    s3_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # the bucket's CORS rules and tags as S3 clients set them (JSON; empty: none)
    s3_cors: Mapped[str] = mapped_column(Text, default="", server_default="")
    s3_tags: Mapped[str] = mapped_column(Text, default="", server_default="")
    # S3 versioning: "" (never set), "Enabled" or "Suspended"
    s3_versioning: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # S3 Object Lock configuration (JSON: enabled, default mode and days/years; empty: none)
    s3_object_lock: Mapped[str] = mapped_column(Text, default="", server_default="")

    pool: Mapped[Pool] = relationship(back_populates="shares")
    grants: Mapped[list[Grant]] = relationship(
        back_populates="share", cascade="all, delete-orphan", order_by="Grant.id"
    )


group_members = Table(
    "group_members",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    """A person (or program) who uses Speicher; also a locked Unix account with a stable uid."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    # null for a user without file access (an admin of the API and console only): no Unix
    # account, no SMB password, no grants
    uid: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)
    file_access: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # creating -> ready -> deleting, as for shares
    state: Mapped[str] = mapped_column(String(16), default="creating", server_default="ready")
    full_name: Mapped[str] = mapped_column(String(128), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    groups: Mapped[list[Group]] = relationship(
        secondary=group_members, back_populates="members", order_by="Group.name"
    )


class SshKey(Base):
    """A public key a user logs in with over SFTP, as parsed and checked when it was added."""

    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA256:<base64 without padding>
    algorithm: Mapped[str] = mapped_column(String(64))  # ssh-ed25519, ecdsa-sha2-nistp256, ...
    comment: Mapped[str] = mapped_column(String(256), default="")
    # "<algorithm> <base64>" as OpenSSH writes it, without the comment
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class S3Key(Base):
    """An S3 access key of a user. The secret must be known to check SigV4 signatures, so it
    is kept sealed (Fernet, with a key in the root-only state directory), never hashed."""

    __tablename__ = "s3_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    access_key: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Group(Base):
    """A set of users; also a Unix group with a stable gid."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    gid: Mapped[int] = mapped_column(Integer, unique=True)
    state: Mapped[str] = mapped_column(String(16), default="creating", server_default="ready")
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    members: Mapped[list[User]] = relationship(
        secondary=group_members, back_populates="groups", order_by="User.name"
    )


class UnixId(Base):
    """A uid or gid Speicher has handed out. Kept when its user or group is deleted, so an id
    is never given twice: a new user must not become the owner of a deleted user's files."""

    __tablename__ = "unix_ids"
    __table_args__ = (UniqueConstraint("kind", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(3))  # uid or gid
    number: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(64), default="")  # whom it was given to first
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Grant(Base):
    """Access of one user or one group to one share: ``rw`` or ``ro``."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("share_id", "user_id"),
        UniqueConstraint("share_id", "group_id"),
        CheckConstraint("(user_id IS NULL) != (group_id IS NULL)", name="one_principal"),
        CheckConstraint("access IN ('rw', 'ro')", name="access_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), nullable=True
    )
    access: Mapped[str] = mapped_column(String(2))

    share: Mapped[Share] = relationship(back_populates="grants")
    user: Mapped[User | None] = relationship()
    group: Mapped[Group | None] = relationship()


class Token(Base):
    """An admin API token. Only a SHA-256 of its secret is kept; the token is shown once."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # refused from then on; null: until deleted
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # the principal that made it (`root`, `user:alice`, `token:ci`); empty for older tokens
    created_by: Mapped[str] = mapped_column(String(80), default="", server_default="")


class WebSession(Base):
    """A browser's login to the web console or file manager. Only a SHA-256 of the cookie's
    secret is kept; the CSRF secret signs the forms of this session."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_secret: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # the password was right, the second factor is still to come: the session opens nothing
    second_factor_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class ShareLink(Base):
    """A link to a file or folder of a share for people without an account: ``download``
    (read only) or ``upload`` (a file request into a folder, up to ``max_bytes``). Only a
    SHA-256 of the link's token is kept, and an Argon2 hash of its password if it has one;
    the link acts as its creator (``user_id``), so it dies with the creator's grant."""

    __tablename__ = "share_links"
    __table_args__ = (CheckConstraint("kind IN ('download', 'upload')", name="link_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(4096), default="")  # in the share; "": its top
    kind: Mapped[str] = mapped_column(String(8))
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    max_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    share: Mapped[Share] = relationship()
    creator: Mapped[User] = relationship()


class TotpSecret(Base):
    """A user's second factor: a TOTP secret (sealed, as S3 secrets are: it must be known to
    check a code), in use once a first code confirmed it; ``last_step`` refuses a code seen
    before (RFC 6238 §5.2)."""

    __tablename__ = "totp_secrets"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_sealed: Mapped[str] = mapped_column(Text)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RecoveryCode(Base):
    """A one-time code for a login without the second factor's device (Argon2 hash)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(256))
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Job(Base):
    """A long operation: what it does, how far it is, how it ended."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256), default="")
    state: Mapped[str] = mapped_column(String(16), default="running")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # where a job moves data: bytes done of the bytes expected, seconds still to go (None:
    # the job does not know)
    bytes_done: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class Event(Base):
    """Something an admin should know about: a pool degraded, the daemon started."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    level: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256), default="")
    message: Mapped[str] = mapped_column(Text)


class SmbSettings(Base):
    """Global SMB settings: one row."""

    __tablename__ = "smb_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    workgroup: Mapped[str] = mapped_column(String(15), default="WORKGROUP")
    server_name: Mapped[str] = mapped_column(String(15), default="")
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    interfaces: Mapped[str] = mapped_column(String(1024), default="")
    signing: Mapped[str] = mapped_column(String(16), default="default", server_default="default")


class Preferences(Base):
    """Box-wide preferences (the console's time zone): one row."""

    __tablename__ = "preferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")


class SnapshotPolicy(Base):
    """Snapshots of a share on a schedule, kept by grandfather-father-son rules."""

    __tablename__ = "snapshot_policies"
    __table_args__ = (UniqueConstraint("share_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    schedule: Mapped[str] = mapped_column(String(64))  # cron, in UTC
    keep_last: Mapped[int] = mapped_column(Integer, default=0)
    keep_hourly: Mapped[int] = mapped_column(Integer, default=0)
    keep_daily: Mapped[int] = mapped_column(Integer, default=0)
    keep_weekly: Mapped[int] = mapped_column(Integer, default=0)
    keep_monthly: Mapped[int] = mapped_column(Integer, default=0)
    lock_days: Mapped[int] = mapped_column(Integer, default=0)  # its snapshots are immutable
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    share: Mapped[Share] = relationship()


class SnapshotMeta(Base):
    """What Speicher knows about a snapshot beyond the filesystem: who made it, its lock."""

    __tablename__ = "snapshot_meta"
    __table_args__ = (UniqueConstraint("share_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshot_policies.id", ondelete="SET NULL"), nullable=True
    )
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScrubRun(Base):
    """One scrub of a pool and what it found."""

    __tablename__ = "scrub_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    bytes_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    errors_found: Mapped[int] = mapped_column(Integer, default=0)
    errors_corrected: Mapped[int] = mapped_column(Integer, default=0)
    errors_uncorrectable: Mapped[int] = mapped_column(Integer, default=0)
    uncorrectable_files: Mapped[str] = mapped_column(Text, default="")  # one path a line


class AlertSettings(Base):
    """Where alerts go: e-mail over SMTP and a webhook. One row."""

    __tablename__ = "alert_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    smtp_host: Mapped[str] = mapped_column(String(255), default="")
    smtp_port: Mapped[int] = mapped_column(Integer, default=587)
    smtp_starttls: Mapped[bool] = mapped_column(Boolean, default=True)
    smtp_username: Mapped[str] = mapped_column(String(255), default="")
    # needed in clear to log in to the mail server; the database file is root-only (0600)
    smtp_password: Mapped[str] = mapped_column(String(255), default="")
    mail_from: Mapped[str] = mapped_column(String(255), default="")
    mail_to: Mapped[str] = mapped_column(Text, default="")  # addresses, comma-separated
    webhook_url: Mapped[str] = mapped_column(String(2048), default="")
    min_level: Mapped[str] = mapped_column(String(8), default="warning")


class AlertState(Base):
    """A condition that raised an alert: not repeated while it lasts, cleared when it ends."""

    __tablename__ = "alert_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(256), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReplicationPairing(Base):
    """On a target: a source box that may send replicas here (docs/replication.md). It
    waits with a one-time code (``code_digest``, until ``expires_at``) and, once paired,
    holds the digest of the credential the source sends with every stream; that credential
    can only receive into ``<pool>/.replicas/<name>/``."""

    __tablename__ = "replication_pairings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    code_digest: Mapped[str] = mapped_column(String(64), default="")
    credential_digest: Mapped[str] = mapped_column(String(64), default="")
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    paired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    source: Mapped[str] = mapped_column(String(255), default="")  # what the source called itself
    # replicas of each share kept here, newest first (0: all); the target's own rule, which
    # no source can change; locked replicas stay until their lock ends
    keep_last: Mapped[int] = mapped_column(Integer, default=0)


class ReplicationTarget(Base):
    """On a source: a box replicas go to, its certificate pinned at pairing and the
    credential it gave us kept sealed (it must be sent, so it cannot be hashed)."""

    __tablename__ = "replication_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    fingerprint: Mapped[str] = mapped_column(String(95))
    certificate: Mapped[str] = mapped_column(Text)  # PEM: the one certificate trusted for it
    credential_sealed: Mapped[str] = mapped_column(Text)
    remote_name: Mapped[str] = mapped_column(String(64))  # our pairing's name over there
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReplicationTask(Base):
    """On a source: a share replicated to a target on a schedule. Each run takes a snapshot
    and sends it; the task keeps its newest ``keep_last`` snapshots here (0: all)."""

    __tablename__ = "replication_tasks"
    __table_args__ = (UniqueConstraint("share_id", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("replication_targets.id", ondelete="CASCADE"))
    schedule: Mapped[str] = mapped_column(String(64))  # cron, in UTC
    keep_last: Mapped[int] = mapped_column(Integer, default=0)
    rpo_hours: Mapped[float] = mapped_column(Float, default=0.0)  # 0: no age alert
    alert_after: Mapped[int] = mapped_column(Integer, default=3)  # failures in a row
    compress: Mapped[bool] = mapped_column(Boolean, default=True)  # zstd on the wire
    bandwidth_mib: Mapped[float] = mapped_column(Float, default=0.0)  # MiB/s; 0: no limit
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    snapshots: Mapped[str] = mapped_column(Text, default="")  # the task's own, one per line
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_ok_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_snapshot: Mapped[str] = mapped_column(String(64), default="")
    last_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    share: Mapped[Share] = relationship()
    target: Mapped[ReplicationTarget] = relationship()


class BackupTarget(Base):
    """A restic repository backups go to (docs/backup.md): an S3 bucket, an SFTP server or
    a local path. Its password and any S3 secret are kept sealed (restic needs them in
    clear); the password is shown once, when the repository is made."""

    __tablename__ = "backup_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # local, s3, sftp
    location: Mapped[str] = mapped_column(String(2048))  # path, s3 URL or sftp address
    access_key: Mapped[str] = mapped_column(String(255), default="")  # s3
    secret_sealed: Mapped[str] = mapped_column(Text, default="")  # s3
    ca_certificate: Mapped[str] = mapped_column(Text, default="")  # PEM; s3 over https
    host_key: Mapped[str] = mapped_column(Text, default="")  # sftp: the server's, pinned
    password_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BackupTask(Base):
    """A share backed up to a target on a schedule: each run backs up a new read-only
    snapshot of the share with restic, then forgets and prunes by the ``keep_*`` rule."""

    __tablename__ = "backup_tasks"
    __table_args__ = (UniqueConstraint("share_id", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("backup_targets.id", ondelete="CASCADE"))
    schedule: Mapped[str] = mapped_column(String(64))  # cron, in UTC
    keep_last: Mapped[int] = mapped_column(Integer, default=0)
    keep_daily: Mapped[int] = mapped_column(Integer, default=7)
    keep_weekly: Mapped[int] = mapped_column(Integer, default=4)
    keep_monthly: Mapped[int] = mapped_column(Integer, default=12)
    keep_yearly: Mapped[int] = mapped_column(Integer, default=0)
    check_days: Mapped[float] = mapped_column(Float, default=7.0)  # 0: never
    check_percent: Mapped[float] = mapped_column(Float, default=5.0)
    alert_after: Mapped[int] = mapped_column(Integer, default=3)  # failures in a row
    alert_days: Mapped[float] = mapped_column(Float, default=2.0)  # 0: no age alert
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_ok_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_check_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_snapshot: Mapped[str] = mapped_column(String(64), default="")  # restic's id
    last_files: Mapped[int] = mapped_column(BigInteger, default=0)
    last_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # of the share
    last_added: Mapped[int] = mapped_column(BigInteger, default=0)  # new in the repository
    last_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    share: Mapped[Share] = relationship()
    target: Mapped[BackupTarget] = relationship()


class RansomwarePolicy(Base):
    """A share's ransomware detection: its thresholds and its response (docs/ransomware.md).
    A share without a row has the defaults."""

    __tablename__ = "ransomware_policies"

    share_id: Mapped[int] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), primary_key=True
    )
    detect: Mapped[bool] = mapped_column(Boolean, default=True)
    canary: Mapped[bool] = mapped_column(Boolean, default=False)
    window: Mapped[float] = mapped_column(Float, default=60.0)  # seconds
    renames: Mapped[int] = mapped_column(Integer, default=10)
    overwrites: Mapped[int] = mapped_column(Integer, default=10)
    deletes: Mapped[int] = mapped_column(Integer, default=10)
    disable_user: Mapped[bool] = mapped_column(Boolean, default=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)  # the shares, on an incident
    lock_days: Mapped[int] = mapped_column(Integer, default=7)  # the incident snapshot's lock

    share: Mapped[Share] = relationship()


class Incident(Base):
    """Ransomware suspected: who, from where, what it touched and what was done about it."""

    __tablename__ = "ransomware_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), default="")
    protocol: Mapped[str] = mapped_column(String(16), default="")
    share: Mapped[str] = mapped_column(String(63))  # where the signal was
    signal: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    paths: Mapped[str] = mapped_column(Text, default="[]")  # JSON: examples of touched files
    # JSON: the detector's own list of the changes in its window, [time, op, path, target]:
    # what a restore needs even when the audit log lost its last records to a kill -9
    changes: Mapped[str] = mapped_column(Text, default="[]")
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # the first counted change
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # open -> resolved (the user released); restored_at: the files were rolled back
    state: Mapped[str] = mapped_column(String(16), default="open")
    response: Mapped[str] = mapped_column(Text, default="")  # what was done, a sentence each
    user_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    snapshots: Mapped[str] = mapped_column(Text, default="{}")  # JSON: share -> its snapshot
    read_only: Mapped[str] = mapped_column(Text, default="[]")  # JSON: the shares it froze
    restored_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    restore_result: Mapped[str] = mapped_column(Text, default="")  # JSON
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
