"""Disks, pools and shares."""

from speicher.storage.disks import DiskService
from speicher.storage.pools import PoolService
from speicher.storage.shares import ShareService

__all__ = ["DiskService", "PoolService", "ShareService"]
