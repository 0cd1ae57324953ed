"""docs/metrics.md and the sample Grafana dashboard say what ``/metrics`` produces: every
metric of the collector is in the table with its type and labels, and every metric the
dashboard's queries use is one of them. (tests/api/test_metrics.py checks a real scrape
against the table too.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metrics_helpers import DOC, answering, documented, scrape, services
from speicher.system import samba

DASHBOARD = DOC.parent / "grafana" / "speicher-dashboard.json"
NAME = re.compile(r"\bspeicher_[a-z0-9_]+")


def produced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every family the collector writes, with its type: with nothing on the box, each one
    is still announced (``# TYPE``), samples or not."""
    monkeypatch.setattr(samba, "status", answering(samba.Status()))
    monkeypatch.setattr(samba, "profile", answering(samba.Profile()))
    text = scrape(services(tmp_path))
    assert "speicher_scrape_error{" in text
    found = dict(re.findall(r"^# TYPE (speicher_\w+) (\w+)$", text, re.M))
    for family in text_string_to_metric_families(text):  # the parser takes it, too
        assert family.name.startswith("speicher")
    return found


def test_the_table_is_what_the_collector_produces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = documented()
    made = produced(tmp_path, monkeypatch)
    assert len(made) > 40
    assert sorted(set(made) - set(table)) == [], "produced but not in docs/metrics.md"
    assert sorted(set(table) - set(made)) == [], "in docs/metrics.md but not produced"
    wrong = {n: (table[n][0], t) for n, t in made.items() if table[n][0] != t}
    assert wrong == {}, "type in docs/metrics.md differs from the scrape's"


def test_conventions() -> None:
    for name, (kind, labels) in documented().items():
        assert re.fullmatch(r"speicher_[a-z0-9_]+", name), name
        assert name.endswith("_total") == (kind == "counter"), name
        if name.endswith("_timestamp_seconds") or name.endswith("_age_seconds"):
            assert kind == "gauge", name
        assert "le" not in labels and "quantile" not in labels, name


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])  # a collapsed row holds its panels
    return found


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return exprs


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["title"] and dashboard["uid"]
    inputs = {i["name"]: i for i in dashboard["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for p in panels:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]), p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_the_dashboard_uses_only_documented_metrics() -> None:
    table = documented()
    used = {name for expr in _queries(_dashboard()) for name in NAME.findall(expr)}
    assert used, "no metric found in the dashboard's queries"
    assert sorted(used - set(table)) == [], "the dashboard uses metrics docs/metrics.md lacks"
    for expr in _queries(_dashboard()):
        for name in NAME.findall(expr):
            if "rate(" in expr or "increase(" in expr:
                continue
            assert table[name][0] != "counter" or "[" in expr, f"a counter's raw value: {expr}"


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    """Pool usage and health, disk temperature, share usage against quota, the newest
    snapshot's age, protocol requests and bytes, SMB sessions, active alerts, replication
    and backup age."""
    used = {name for expr in _queries(_dashboard()) for name in NAME.findall(expr)}
    wanted = {
        "speicher_pool_used_bytes",
        "speicher_pool_size_bytes",
        "speicher_pool_healthy",
        "speicher_disk_temperature_celsius",
        "speicher_share_used_bytes",
        "speicher_share_quota_bytes",
        "speicher_share_newest_snapshot_age_seconds",
        "speicher_protocol_requests_total",
        "speicher_protocol_received_bytes_total",
        "speicher_protocol_sent_bytes_total",
        "speicher_smb_sessions",
        "speicher_alert_conditions_active",
        "speicher_replication_last_success_timestamp_seconds",
        "speicher_backup_last_success_timestamp_seconds",
    }
    assert sorted(wanted - used) == []
