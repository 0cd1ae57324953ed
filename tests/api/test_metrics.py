"""``/metrics``: who may scrape it, and whether what it says is what the API says.

Parsed with prometheus-client's parser of Prometheus's text format. One daemon whose
``metrics_allow`` lets 127.0.0.2 scrape without a token (the tests connect from 127.0.0.1
otherwise, which it does not allow)."""

from __future__ import annotations

import datetime as dt
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sftp_helpers import run_sftp
from smb_helpers import smb_user

from conftest import _base
from metrics_helpers import documented
from speicher_testing import Daemon
from world import make_pool, make_share, make_user, password

pytestmark = pytest.mark.system

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon(_base())
    d.env["SPEICHER_METRICS_ALLOW"] = '["127.0.0.2/32"]'
    d.env["SPEICHER_S3_WORKERS"] = "2"  # S3 answered by worker processes, counted in files
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    docs = make_share(daemon, "docs", {"alice": "rw"}, quota="200M", smb={"enabled": True})
    (docs / "report.bin").write_bytes(os.urandom(8 * 1024 * 1024))  # a used figure to compare
    os.sync()  # qgroups count it at the commit
    make_share(daemon, "web", {"alice": "rw"}, webdav=True, s3=True, sftp=True)
    for _ in range(2):
        r = daemon.api.post("/shares/docs/snapshots", json={})
        assert r.status_code == 201, r.text
        time.sleep(1.1)  # snapshot names have seconds
    token = daemon.api.post("/tokens", json={"name": "prometheus"})
    assert token.status_code == 201, token.text
    key = daemon.api.post("/users/alice/s3-keys")
    assert key.status_code == 201, key.text
    return {"token": token.json()["token"], "s3": key.json()}


def scrape(daemon: Daemon, token: str) -> Samples:
    r = httpx.get(f"{daemon.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"sample {key} twice"
            samples[key] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} missing; have {[k for k in samples if k[0] == name]}"
    return samples[key]


def problem(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in r.text
    detail: str = r.json()["detail"]
    return detail


# -- who may scrape ------------------------------------------------------------------------------


def test_refused_without_token(daemon: Daemon, world: dict[str, Any]) -> None:
    r = httpx.get(f"{daemon.url}/metrics")
    assert "token" in problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.get(f"{daemon.https_url}/metrics", verify=False)  # noqa: S501 - self-signed
    problem(r, 401)


def test_a_wrong_token_is_refused(daemon: Daemon, world: dict[str, Any]) -> None:
    wrong = world["token"][:-4] + "xxxx"
    r = httpx.get(f"{daemon.url}/metrics", headers={"Authorization": f"Bearer {wrong}"})
    assert "not valid" in problem(r, 401)
    r = httpx.get(f"{daemon.url}/metrics", headers={"Authorization": "Bearer nonsense"})
    problem(r, 401)


def test_a_password_is_refused(daemon: Daemon, world: dict[str, Any]) -> None:
    r = httpx.get(f"{daemon.url}/metrics", auth=("admin", "admin-secret-1"))
    assert "token" in problem(r, 403)


def test_an_allowed_address_needs_no_token(daemon: Daemon, world: dict[str, Any]) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport) as client:
        r = client.get(f"{daemon.url}/metrics")
    assert r.status_code == 200, r.text
    assert value(parse(r.text), "speicher_pool_healthy", pool="tank") == 1


def test_a_deleted_token_no_longer_scrapes(daemon: Daemon, world: dict[str, Any]) -> None:
    made = daemon.api.post("/tokens", json={"name": "short-lived"})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    scrape(daemon, token)
    assert daemon.api.delete("/tokens/short-lived").status_code == 204
    r = httpx.get(f"{daemon.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    problem(r, 401)


# -- what it says -----------------------------------------------------------------------------


def test_pools_shares_snapshots_and_jobs_match_the_api(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    # a single pool and share are read afresh; the scrape then has the same figures
    pool = daemon.api.get("/pools/tank").json()
    docs = daemon.api.get("/shares/docs").json()
    samples = scrape(daemon, world["token"])
    assert pool["size"] > 0 and pool["used"] >= 8 * 1024 * 1024
    for field in ("size", "used", "free"):
        assert value(samples, f"speicher_pool_{field}_bytes", pool="tank") == pytest.approx(
            pool[field], rel=0.001
        ), field
    assert value(samples, "speicher_pool_health", pool="tank", health="ok") == 1
    assert value(samples, "speicher_pool_health", pool="tank", health="degraded") == 0
    assert value(samples, "speicher_pool_disks", pool="tank", state="online") == 1
    assert value(
        samples, "speicher_pool_device_errors_total", pool="tank", disk="d1", type="write_io"
    ) == (0)
    assert value(samples, "speicher_disk_state", pool="tank", disk="d1", state="ok") == 1

    assert value(samples, "speicher_pool_info", pool="tank", profile="single") == 1
    assert value(samples, "speicher_share_quota_bytes", share="docs", pool="tank") == docs["quota"]
    assert docs["quota"] == 200 * 1024 * 1024
    assert ("speicher_share_quota_bytes", (("pool", "tank"), ("share", "web"))) not in samples
    assert docs["used"] >= 8 * 1024 * 1024
    assert value(samples, "speicher_share_used_bytes", share="docs", pool="tank") == docs["used"]
    snapshots = daemon.api.get("/shares/docs/snapshots").json()
    assert len(snapshots) == 2
    assert value(samples, "speicher_share_snapshots", share="docs", pool="tank") == 2
    assert value(samples, "speicher_share_snapshots", share="web", pool="tank") == 0
    newest = max(dt.datetime.fromisoformat(s["time"]) for s in snapshots)
    assert value(
        samples, "speicher_share_newest_snapshot_timestamp_seconds", share="docs", pool="tank"
    ) == pytest.approx(newest.timestamp())
    age = value(samples, "speicher_share_newest_snapshot_age_seconds", share="docs", pool="tank")
    assert age == pytest.approx(time.time() - newest.timestamp(), abs=5)
    assert not any(
        n == "speicher_share_newest_snapshot_age_seconds" and ("share", "web") in labels
        for n, labels in samples
    )

    jobs = daemon.api.get("/jobs").json()
    created = [j for j in jobs if j["kind"] == "pool.create"]
    assert created and all(j["state"] == "succeeded" for j in created)
    failed: dict[str, int] = {}
    for j in jobs:
        if j["state"] == "failed":
            failed[j["kind"]] = failed.get(j["kind"], 0) + 1
    assert {
        dict(labels)["kind"]: v
        for (n, labels), v in samples.items()
        if n == "speicher_jobs_failed_total"
    } == failed
    running = sum(v for (n, _), v in samples.items() if n == "speicher_jobs_running")
    assert running == sum(j["state"] == "running" for j in jobs)
    assert value(samples, "speicher_alert_conditions_active") == len(
        daemon.api.get("/alerts/active").json()
    )
    errors = {
        dict(labels)["source"]: v
        for (n, labels), v in samples.items()
        if n == "speicher_scrape_error"
    }
    assert len(errors) >= 10 and set(errors.values()) == {0.0}, errors
    assert value(samples, "speicher_scrape_duration_seconds") < 1


def test_every_metric_of_a_scrape_is_documented(daemon: Daemon, world: dict[str, Any]) -> None:
    r = httpx.get(f"{daemon.url}/metrics", headers={"Authorization": f"Bearer {world['token']}"})
    table = documented()
    families = list(text_string_to_metric_families(r.text))
    ours = {f.name: f for f in families if f.name.startswith("speicher_")}
    assert len(ours) > 30
    for name, family in ours.items():
        key = f"{name}_total" if family.type == "counter" else name  # the parser drops _total
        assert key in table, f"{key} is not in docs/metrics.md"
        assert table[key][0] == family.type, key
        for sample in family.samples:
            assert set(sample.labels) == table[key][1], (key, sample.labels)
    assert "process_resident_memory_bytes" in {f.name for f in families}


# -- protocols --------------------------------------------------------------------------------


def test_smb_session_and_counters_move(daemon: Daemon, world: dict[str, Any]) -> None:
    before = scrape(daemon, world["token"])
    data = b"x" * (3 * 1024 * 1024)
    with smb_user(daemon, "alice") as alice:
        alice.write("docs", "big.bin", data)
        assert alice.read("docs", "big.bin") == data
        during = scrape(daemon, world["token"])  # the connection is still cached open
    assert value(during, "speicher_smb_up") == 1
    assert value(during, "speicher_smb_sessions") >= 1

    def moved(now: Samples, name: str) -> float:
        key = (name, (("protocol", "smb"),))
        return now.get(key, 0.0) - before.get(key, 0.0)

    # each smbd writes its counts a second after they change (Samba's profile dump)
    deadline = time.monotonic() + 15
    after = scrape(daemon, world["token"])
    while moved(after, "speicher_protocol_sent_bytes_total") < len(data):
        assert time.monotonic() < deadline, "smbd's counters did not move"
        time.sleep(0.5)
        after = scrape(daemon, world["token"])
    assert moved(after, "speicher_protocol_requests_total") >= 4  # session, tree, create, I/O
    assert moved(after, "speicher_protocol_received_bytes_total") >= len(data)
    assert moved(after, "speicher_protocol_sent_bytes_total") >= len(data)


def test_webdav_counters_move(daemon: Daemon, world: dict[str, Any]) -> None:
    before = scrape(daemon, world["token"])
    body = b"d" * 100_000
    with httpx.Client(base_url=f"{daemon.url}/dav", auth=("alice", password("alice"))) as dav:
        assert dav.put("/web/hello.txt", content=body).status_code in (201, 204)
        assert dav.get("/web/hello.txt").content == body
        assert dav.get("/web/missing.txt").status_code == 404
    after = scrape(daemon, world["token"])

    def moved(name: str, **labels: str) -> float:
        labels = {"protocol": "webdav", **labels}
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("speicher_protocol_requests_total") == 3
    assert moved("speicher_protocol_received_bytes_total") == len(body)
    assert moved("speicher_protocol_sent_bytes_total") >= len(body)
    assert moved("speicher_protocol_errors_total", kind="client") == 1
    assert moved("speicher_protocol_errors_total", kind="server") == 0


def test_s3_counters_move_across_worker_processes(daemon: Daemon, world: dict[str, Any]) -> None:
    key = world["s3"]
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{daemon.s3_port}",
        region_name="us-east-1",
        aws_access_key_id=key["access_key"],
        aws_secret_access_key=key["secret"],
        config=botocore.config.Config(
            signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}
        ),
    )
    before = scrape(daemon, world["token"])
    body = b"s" * 50_000
    s3.put_object(Bucket="web", Key="object.bin", Body=body)
    for _ in range(5):
        got = io.BytesIO()
        s3.download_fileobj("web", "object.bin", got)
        assert got.getvalue() == body
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket="web", Key="missing.bin")
    s3.close()
    after = scrape(daemon, world["token"])

    def moved(name: str, **labels: str) -> float:
        labels = {"protocol": "s3", **labels}
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("speicher_protocol_requests_total") >= 7
    assert moved("speicher_protocol_received_bytes_total") >= len(body)
    assert moved("speicher_protocol_sent_bytes_total") >= 5 * len(body)
    assert moved("speicher_protocol_errors_total", kind="client") >= 1
    assert moved("speicher_protocol_errors_total", kind="server") == 0


def test_sftp_counters_move(daemon: Daemon, world: dict[str, Any], tmp_path: Path) -> None:
    """OpenSSH's sftp puts and gets a file and asks for one that is not there."""
    data = os.urandom(1024 * 1024 + 17)
    (tmp_path / "up.bin").write_bytes(data)
    before = scrape(daemon, world["token"])
    result = run_sftp(
        daemon,
        "alice",
        f"put {tmp_path / 'up.bin'} /web/sftp.bin",
        f"get /web/sftp.bin {tmp_path / 'down.bin'}",
        f"-get /web/missing.bin {tmp_path / 'missing.bin'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout
    assert (tmp_path / "down.bin").read_bytes() == data
    after = scrape(daemon, world["token"])

    def moved(name: str, **labels: str) -> float:
        labels = {"protocol": "sftp", **labels}
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("speicher_protocol_received_bytes_total") == len(data)  # WRITE's data
    assert moved("speicher_protocol_sent_bytes_total") == len(data)  # READ's data
    # open, WRITEs, close; stat, open, READs, close; the missing file's stat (OpenSSH's sftp
    # asks for up to 256 KiB a request where the server allows it, so 4 or more each way)
    assert moved("speicher_protocol_requests_total") >= 2 * 4 + 5
    assert moved("speicher_protocol_errors_total", kind="client") >= 1  # no such file
    assert moved("speicher_protocol_errors_total", kind="server") == 0


def test_backup_task_age_matches_the_api(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    repo = daemon.base / "usb" / "restic"
    repo.parent.mkdir(exist_ok=True)
    r = daemon.api.post("/backup/targets", json={"name": "usb", "kind": "local", "path": str(repo)})
    assert r.status_code == 201, r.text
    r = daemon.api.post(
        "/backup/tasks", json={"share": "docs", "target": "usb", "schedule": "0 1 * * *"}
    )
    assert r.status_code == 201, r.text
    task = str(r.json()["id"])
    labels = {"task": task, "share": "docs", "target": "usb"}
    samples = scrape(daemon, world["token"])
    assert value(samples, "speicher_backup_failures", **labels) == 0
    assert (
        "speicher_backup_last_success_timestamp_seconds",
        tuple(sorted(labels.items())),
    ) not in samples

    r = daemon.api.post(f"/backup/tasks/{task}/run")
    assert r.status_code == 202, r.text
    assert daemon.wait_job(r.json())["state"] == "succeeded"
    info = daemon.api.get(f"/backup/tasks/{task}").json()
    samples = scrape(daemon, world["token"])
    last_ok = dt.datetime.fromisoformat(info["last_ok_at"])
    assert value(
        samples, "speicher_backup_last_success_timestamp_seconds", **labels
    ) == pytest.approx(last_ok.timestamp())
    assert value(samples, "speicher_backup_last_run_timestamp_seconds", **labels) == pytest.approx(
        dt.datetime.fromisoformat(info["last_run_at"]).timestamp()
    )
    age = value(samples, "speicher_backup_last_success_age_seconds", **labels)
    assert age == pytest.approx(info["backup_age_seconds"], abs=5)
    assert value(samples, "speicher_backup_failures", **labels) == info["failures"] == 0
