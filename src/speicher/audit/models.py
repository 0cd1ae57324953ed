"""The audit log in the API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from speicher.audit.records import Record
from speicher.audit.store import Query
from speicher.validation import Request

MAX_LIMIT = 10_000


class AuditSearch(Request):
    """What to look for; every field given narrows the search. Times without a zone are UTC;
    a date alone is its midnight (UTC)."""

    model_config = ConfigDict(extra="forbid")

    since: dt.datetime | None = Field(None, description="From this time on (inclusive).")
    until: dt.datetime | None = Field(None, description="Up to this time (inclusive).")
    user: str | None = Field(
        None, max_length=200, description="Who: a user's name, or `token:NAME`, `root`."
    )
    share: str | None = Field(None, max_length=63, description="The share.")
    path: str | None = Field(
        None,
        max_length=4096,
        description="A path in the share, and everything beneath it (`/finance/2026`).",
    )
    protocol: str | None = Field(
        None, max_length=64, description="`smb`, `webdav`, `sftp`, `s3`, `web`, `api`, `cli`..."
    )
    operation: str | None = Field(
        None, max_length=200, description="`create`, `delete`, `rename`, `login`..."
    )
    category: Literal["file", "admin", "login"] | None = Field(
        None, description="File operations, admin actions or logins."
    )
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="At most this many (newest first).")

    @field_validator("share", "user", mode="after")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None and not value.startswith("token:") else value

    def query(self) -> Query:
        return Query(
            since=_seconds(self.since),
            until=_seconds(self.until),
            user=self.user,
            share=self.share,
            path=None if self.path is None else "/" + self.path.strip("/"),
            protocol=self.protocol,
            operation=self.operation,
            category=self.category,
            limit=self.limit,
        )


def _seconds(when: dt.datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


class AuditEntry(BaseModel):
    """One record of the audit log."""

    time: dt.datetime = Field(description="When (UTC).")
    category: str = Field(description="`file`, `admin` or `login`.")
    protocol: str = Field(description="Over what: `smb`, `webdav`, `sftp`, `s3`, `web`, `api`...")
    user: str = Field(description="Who.")
    address: str = Field(description="The client's address; empty over the local socket.")
    share: str = Field(description="The share (file operations).")
    operation: str = Field(description="What: docs/audit.md lists every operation.")
    path: str = Field(description="The file or folder in the share; an admin action's object.")
    target: str = Field(description="The new name of a rename or copy.")
    size: int = Field(description="A written file's size afterwards; a read file's size.")
    outcome: str = Field(description="`ok`, or `failed` and why.")
    detail: str = Field(description="More, where there is more.")

    @classmethod
    def of(cls, r: Record) -> AuditEntry:
        return cls(
            time=dt.datetime.fromtimestamp(r.time, dt.UTC),
            category=r.category,
            protocol=r.protocol,
            user=r.user,
            address=r.address,
            share=r.share,
            operation=r.operation,
            path=r.path,
            target=r.target,
            size=r.size,
            outcome=r.outcome,
            detail=r.detail,
        )


CSV_COLUMNS = (
    "time",
    "category",
    "protocol",
    "user",
    "address",
    "share",
    "operation",
    "path",
    "target",
    "size",
    "outcome",
    "detail",
)
