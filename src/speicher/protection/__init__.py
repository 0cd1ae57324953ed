"""Keeping data safe: snapshots, policies, scrubs and disk health."""

from speicher.protection.health import DiskHealthService
from speicher.protection.policies import PolicyService
from speicher.protection.scrub import ScrubService
from speicher.protection.snapshots import SnapshotService

__all__ = ["DiskHealthService", "PolicyService", "ScrubService", "SnapshotService"]
