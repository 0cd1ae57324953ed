"""For the tests of ``/metrics``: the table of docs/metrics.md, and a stand-in for the
daemon's services, as much of them as ``metrics/collector.py`` reads, so its output can be
read without a daemon (tests/unit/test_metrics_collector.py: one source failing;
tests/docs/test_metrics_doc.py: every metric documented)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest

from speicher.metrics.collector import SpeicherCollector
from speicher.metrics.counters import ProtocolCounters
from speicher.services import Services

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(?P<name>speicher_\w+)` \| (?P<type>[^|]+?) \|(?P<labels>[^|]*)\|", re.M)


def documented() -> dict[str, tuple[str, set[str]]]:
    """docs/metrics.md's table: name -> (type as the text format says it, label names)."""
    found: dict[str, tuple[str, set[str]]] = {}
    for m in _ROW.finditer(DOC.read_text()):
        assert m["name"] not in found, f"{m['name']} is in the table twice"
        kind = m["type"].split()[0]  # "gauge (info)" is a gauge in the text format
        found[m["name"]] = (kind, set(re.findall(r"`(\w+)`", m["labels"])))
    return found


class _Rows:
    def all(self) -> list[Any]:
        return []


class _Session:
    """No scrub runs, no jobs."""

    def execute(self, _query: Any) -> _Rows:
        return _Rows()

    def scalars(self, _query: Any) -> list[Any]:
        return []


class _Database:
    @contextmanager
    def session(self) -> Iterator[_Session]:
        yield _Session()


def answering(value: Any) -> Callable[..., Any]:
    return lambda *_args, **_kwargs: value


def failing(message: str) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(message)

    return fail


def services(state_dir: Path, **parts: Any) -> SimpleNamespace:
    """Services with nothing in them (no pool, share, task...), smbd running; ``parts``
    replace any of them."""
    fake = SimpleNamespace(
        settings=SimpleNamespace(state_dir=state_dir, mount_root=state_dir / "mnt"),
        pools=SimpleNamespace(list=answering([]), mountpoint=lambda name: state_dir / name),
        shares=SimpleNamespace(list=answering([])),
        health=SimpleNamespace(report=answering([])),
        db=_Database(),
        smb=SimpleNamespace(supervisor=SimpleNamespace(running=True), conf=state_dir / "smb.conf"),
        alerts=SimpleNamespace(active=answering([])),
        ransomware=SimpleNamespace(incidents=answering([])),
        replication_tasks=SimpleNamespace(list=answering([])),
        backup_tasks=SimpleNamespace(list=answering([])),
        counters=ProtocolCounters(),
    )
    for name, value in parts.items():
        setattr(fake, name, value)
    return fake


def scrape(fake: SimpleNamespace) -> str:
    """What ``/metrics`` would answer (without the process's own metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpeicherCollector(cast(Services, fake), clock=lambda: NOW))
    return generate_latest(registry).decode()
