"""Offsite backup of shares with restic (docs/backup.md)."""
