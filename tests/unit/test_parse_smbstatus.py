"""smbstatus --json, as Samba 4.17 prints it with one client holding one file open."""

from __future__ import annotations

from pathlib import Path

from speicher.system import samba

RECORDED = (Path(__file__).parent / "smbstatus_session.json").read_text()


def test_sessions_open_files_and_shares() -> None:
    status = samba.parse_status(RECORDED)
    assert status.sessions == [
        samba.Session(
            session_id="850030479",
            pid=30319,
            username="tm-alice",
            remote="127.0.0.1",
            protocol="SMB3_11",
            encryption="",
        )
    ]
    assert status.open_files == [
        samba.OpenFile(
            pid=30319,
            username="tm-alice",
            share_path="/tmp/speicher-test-manual/mnt/demo/docs",
            name="held.txt",
        )
    ]
    assert status.shares == {"docs": [30319]}


def test_nobody_connected() -> None:
    empty = '{"sessions": {}, "tcons": {}, "open_files": {}}'
    assert samba.parse_status(empty) == samba.Status()
    assert samba.parse_status("") == samba.Status()
