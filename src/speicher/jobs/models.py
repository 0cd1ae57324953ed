from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class JobInfo(BaseModel):
    """A long operation and how far it is."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Job number.")
    kind: str = Field(description="What it does, e.g. `pool.create`, `pool.replace-disk`.")
    target: str = Field(description="What it works on, e.g. a pool's name.")
    state: str = Field(description="`running`, `succeeded` or `failed`.")
    progress: float = Field(description="Percent done, 0 to 100.")
    message: str = Field(description="The step it is at, or how it ended.")
    error: str = Field(description="Why it failed; empty unless `state` is `failed`.")
    created_at: dt.datetime = Field(description="When it started (UTC).")
    bytes_done: int | None = Field(None, description="Bytes moved so far, where it moves data.")
    bytes_total: int | None = Field(None, description="Bytes it expects to move in all.")
    eta_seconds: float | None = Field(None, description="Its estimate of the seconds left.")
    finished_at: dt.datetime | None = Field(description="When it ended (UTC), if it has.")
