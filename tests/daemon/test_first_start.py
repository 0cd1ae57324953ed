"""The first start, as a newcomer meets it: on a machine that has a Unix account named like the
first admin, and when the first start fails (nothing half-made is left)."""

from __future__ import annotations

import grp
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from speicher_testing import Daemon, remove_traces

pytestmark = pytest.mark.system


def _base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="speicher-test-", dir="/tmp"))
    base.chmod(0o755)
    return base


def test_a_system_account_named_admin_does_not_stop_the_first_start() -> None:
    daemon = Daemon(_base())
    taken = daemon.unix_name("admin")  # the instance's Unix name for a Speicher user 'admin'
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", taken], check=True)
    try:
        daemon.start()
        admin = daemon.api.get("/users/admin").json()
        assert admin["admin"] and not admin["file_access"] and admin["uid"] is None
        # the machine's own account is untouched, and Samba has no password for the admin
        conf = str(daemon.state_dir / "samba" / "smb.conf")
        passdb = subprocess.run(
            ["pdbedit", f"--configfile={conf}", "-L"], capture_output=True, text=True, check=False
        ).stdout
        assert taken not in passdb
    finally:
        daemon.cleanup()  # removes every account with the instance's prefix, 'taken' too


def test_a_failed_first_start_leaves_nothing_behind() -> None:
    base = _base()
    daemon = Daemon(base)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", daemon.https_port))
    blocker.listen(1)
    try:
        with pytest.raises(AssertionError, match="daemon exited"):
            daemon.start(timeout=60)
        assert not daemon.state_dir.exists()
        assert not daemon.mount_root.exists()
        with pytest.raises(KeyError):
            grp.getgrnam(f"{daemon.prefix}speicher")
        assert "cannot listen" in daemon.log()
    finally:
        blocker.close()
        daemon.api.close()
        remove_traces(base, daemon.prefix)


LINK = Path("/usr/local/bin/speicher")


def test_make_run_whose_first_start_fails_removes_the_link_it_made() -> None:
    """`make run` links `speicher` into /usr/local/bin; when that first start fails, the link
    goes too (and the daemon removes its own directories), so the machine is as before."""
    base = _base()
    daemon = Daemon(base)
    root = Path(__file__).resolve().parents[2]
    before = LINK.readlink() if LINK.is_symlink() else None
    if LINK.exists() and not LINK.is_symlink():
        pytest.skip(f"{LINK} is a real file here; not touching it")
    LINK.unlink(missing_ok=True)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", daemon.https_port))
    blocker.listen(1)
    try:
        run = subprocess.run(
            ["make", "--no-print-directory", "-C", str(root), "run"],
            env=daemon.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode != 0, run.stdout + run.stderr
        assert "removed the speicher link" in run.stderr, run.stdout + run.stderr
        assert not LINK.exists() and not LINK.is_symlink()
        assert not daemon.state_dir.exists() and not daemon.mount_root.exists()
    finally:
        blocker.close()
        daemon.api.close()
        remove_traces(base, daemon.prefix)
        LINK.unlink(missing_ok=True)
        if before is not None:
            LINK.symlink_to(before)
