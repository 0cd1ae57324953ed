"""Snapshot locks, restores, rollbacks, clones and snapshot policies."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
