"""The configuration database: SQLAlchemy 2 models, sessions and Alembic migrations."""

from speicher.db.models import (
    AlertSettings,
    AlertState,
    Base,
    Event,
    Grant,
    Group,
    Job,
    Pool,
    PoolDisk,
    ScrubRun,
    Share,
    SmbSettings,
    SnapshotMeta,
    SnapshotPolicy,
    Token,
    User,
    VirtualDisk,
)
from speicher.db.session import Database

__all__ = [
    "AlertSettings",
    "AlertState",
    "Base",
    "Database",
    "Event",
    "Grant",
    "Group",
    "Job",
    "Pool",
    "PoolDisk",
    "ScrubRun",
    "Share",
    "SmbSettings",
    "SnapshotMeta",
    "SnapshotPolicy",
    "Token",
    "User",
    "VirtualDisk",
]
