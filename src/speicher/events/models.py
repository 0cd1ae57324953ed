from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class EventInfo(BaseModel):
    """One entry of the event log."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Sequence number; higher is newer.")
    time: dt.datetime = Field(description="When it happened (UTC).")
    level: str = Field(description="`info`, `warning` or `error`.")
    kind: str = Field(description="What happened, e.g. `pool.degraded`, `daemon.start`.")
    subject: str = Field(description="What it happened to, e.g. a pool's name.")
    message: str = Field(description="A sentence for people.")
