"""The audit log: search it, export it. Nothing here changes it: there is no such route."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from enum import Enum
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from speicher.api.deps import ServicesDep
from speicher.audit.models import CSV_COLUMNS, AuditEntry, AuditSearch
from speicher.audit.service import AuditLog

router = APIRouter()
TAGS: list[str | Enum] = ["audit"]


@router.get(
    "/audit",
    tags=TAGS,
    summary="Search the audit log",
    description="File operations over every protocol, admin actions and logins, newest "
    "first. Records of the last half second may still be on their way to the disk; the "
    "search waits for them (at most a second).",
)
async def search_audit(
    search: Annotated[AuditSearch, Query()], services: ServicesDep
) -> list[AuditEntry]:
    audit = services.audit
    q = search.query()

    def run() -> list[AuditEntry]:
        audit.flush(1.0)
        return [AuditEntry.of(r) for r in audit.search(q)]

    return await to_thread.run_sync(run)


@router.get(
    "/audit/export.csv",
    tags=TAGS,
    summary="The audit log as CSV",
    description="Every record that matches (`limit` is ignored), oldest first, as CSV with a "
    "header line; times in UTC (ISO 8601). Cells that a spreadsheet would take for a formula "
    "start with an apostrophe.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_audit(
    search: Annotated[AuditSearch, Query()], services: ServicesDep
) -> StreamingResponse:
    services.audit.flush(1.0)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _csv(services.audit, search),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="speicher-audit-{stamp}.csv"'},
    )


def _csv(audit: AuditLog, search: AuditSearch) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for count, record in enumerate(audit.export(search.query()), 1):
        entry = AuditEntry.of(record)
        writer.writerow(
            [entry.time.isoformat(), *(_cell(getattr(entry, c)) for c in CSV_COLUMNS[1:])]
        )
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(value: object) -> object:
    """A text that starts like a formula (=, +, -, @) gets an apostrophe: a file named
    ``=HYPERLINK(...)`` stays a name in a spreadsheet (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
