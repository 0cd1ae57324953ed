from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class SnapshotCreate(BaseModel):
    name: str | None = Field(
        None,
        description="`@GMT-YYYY.MM.DD-HH.MM.SS` (UTC); empty for now. This name is what "
        "Windows shows as a Previous Version.",
    )


class SnapshotInfo(BaseModel):
    """A read-only snapshot of a share."""

    share: str = Field(description="The share it is a snapshot of.")
    name: str = Field(description="`@GMT-YYYY.MM.DD-HH.MM.SS`, the time it was taken (UTC).")
    time: dt.datetime = Field(description="When it was taken (UTC).")
    path: str = Field(description="Where it is on the server (read-only).")
