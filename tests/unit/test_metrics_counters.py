"""The protocols' request counters (``metrics/counters.py``) and the allow-list of
``/metrics`` (``metrics/endpoint.py``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from speicher.metrics import counters
from speicher.metrics.counters import Counts, ProtocolCounters
from speicher.metrics.endpoint import allowed


def test_counts_in_memory_then_in_a_file_another_process_reads(tmp_path: Path) -> None:
    own = ProtocolCounters()
    own.request("s3", 10, 200, client_error=False, server_error=False)
    own.request("s3", 5, 0, client_error=True, server_error=False)
    assert own.counts("s3") == Counts(2, 15, 200, 1, 0)
    own.share(tmp_path / "s3-0")  # what counted before goes along
    own.request("s3", 0, 7, client_error=False, server_error=True)
    assert counters.read(tmp_path / "s3-0")["s3"] == Counts(3, 15, 207, 1, 1)
    assert counters.read(tmp_path / "s3-0")["webdav"] == Counts()


def test_a_restarted_worker_counts_on(tmp_path: Path) -> None:
    first = ProtocolCounters()
    first.share(tmp_path / "s3-1")
    first.request("s3", 1, 1, client_error=False, server_error=False)
    again = ProtocolCounters()  # the worker started anew maps the same file
    again.share(tmp_path / "s3-1")
    again.request("s3", 1, 1, client_error=False, server_error=False)
    assert counters.read(tmp_path / "s3-1")["s3"].requests == 2


def test_totals_add_the_workers_files(tmp_path: Path) -> None:
    daemon = ProtocolCounters()
    daemon.request("webdav", 3, 4, client_error=False, server_error=False)
    for i in range(2):
        worker = ProtocolCounters()
        worker.share(tmp_path / f"s3-{i}")
        worker.request("s3", 100, 1000, client_error=False, server_error=False)
    (tmp_path / "s3-9").write_bytes(b"not ours")  # ignored, not a crash
    totals = counters.totals(daemon, tmp_path)
    assert totals["s3"] == Counts(2, 200, 2000, 0, 0)
    assert totals["webdav"] == Counts(1, 3, 4, 0, 0)
    assert totals["sftp"] == Counts()


def test_a_foreign_file_is_taken_over_empty(tmp_path: Path) -> None:
    path = tmp_path / "s3-0"
    path.write_bytes(b"x" * 10)
    own = ProtocolCounters()
    own.share(path)
    own.request("sftp", 1, 2, client_error=False, server_error=False)
    assert counters.read(path)["sftp"] == Counts(1, 1, 2, 0, 0)


def test_allow_list() -> None:
    nets = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")]
    assert allowed("10.0.0.5", nets)
    assert allowed("::ffff:10.0.0.5", nets)  # an IPv4 client of a dual-stack socket
    assert allowed("fd00::1", nets)
    assert not allowed("10.0.1.5", nets)
    assert not allowed("fd01::1", nets)
    assert not allowed(None, nets)
    assert not allowed("garbage", nets)
    assert not allowed("10.0.0.5", [])
