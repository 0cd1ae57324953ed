"""The configuration database: SQLAlchemy 2 models, sessions and Alembic migrations."""

from speicher.db.models import (
    Base,
    Event,
    Grant,
    Group,
    Job,
    Pool,
    PoolDisk,
    Share,
    SmbSettings,
    Token,
    User,
    VirtualDisk,
)
from speicher.db.session import Database

__all__ = [
    "Base",
    "Database",
    "Event",
    "Grant",
    "Group",
    "Job",
    "Pool",
    "PoolDisk",
    "Share",
    "SmbSettings",
    "Token",
    "User",
    "VirtualDisk",
]
