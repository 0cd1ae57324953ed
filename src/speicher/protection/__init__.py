"""Keeping data safe: snapshots (and later policies, scrubs, replication)."""

from speicher.protection.snapshots import SnapshotService

__all__ = ["SnapshotService"]
