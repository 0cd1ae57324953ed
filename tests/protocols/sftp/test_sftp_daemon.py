"""The SFTP server as part of the daemon: off with port 0, a port in use or a broken host key
stops the start with one readable line (nothing half-made left), never a traceback."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def _base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="speicher-test-", dir="/tmp"))
    base.chmod(0o755)
    return base


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_port_zero_turns_sftp_off() -> None:
    daemon = Daemon(_base())
    daemon.env["SPEICHER_SFTP_PORT"] = "0"
    try:
        daemon.start()
        info = daemon.api.get("/sftp").json()
        assert not info["enabled"] and not info["running"], info
        assert "SFTP is off" in daemon.cli("sftp", "show").stdout
        assert "sftp" not in daemon.cli("status").stdout
        assert "SFTP:" not in daemon.log()
        assert not (daemon.state_dir / "ssh").exists()
    finally:
        daemon.cleanup()


def test_a_port_in_use_stops_the_start_in_one_line() -> None:
    daemon = Daemon(_base())
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", daemon.sftp_port))
    blocker.listen(1)
    try:
        with pytest.raises(AssertionError, match="daemon exited"):
            daemon.start(timeout=60)
        log = daemon.log()
        assert f"SFTP cannot listen on 127.0.0.1:{daemon.sftp_port}" in log, log
        assert "Traceback" not in log, log
        assert not daemon.state_dir.exists()  # a failed first start leaves nothing behind
    finally:
        blocker.close()
        daemon.cleanup()


def test_a_broken_host_key_stops_the_start_in_one_line() -> None:
    daemon = Daemon(_base())
    try:
        daemon.start()
        assert listening(daemon.sftp_port)
        daemon.stop()
        key = daemon.state_dir / "ssh" / "ssh_host_ed25519_key"
        kept = key.read_bytes()
        key.write_bytes(b"not a key\n")
        with pytest.raises(AssertionError, match="daemon exited"):
            daemon.start(timeout=60)
        log = daemon.log()
        assert "the SFTP host key" in log and "cannot be used" in log, log
        assert "Traceback" not in log, log
        key.write_bytes(kept)  # the admin puts it back: the same key again
        daemon.start()
        assert listening(daemon.sftp_port)
    finally:
        daemon.cleanup()
