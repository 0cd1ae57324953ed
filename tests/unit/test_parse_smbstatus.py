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


PROFILE = (Path(__file__).parent / "smbstatus_profile.json").read_text()


def test_profile_sums_every_smb2_call() -> None:
    """``smbstatus --profile --json`` of Samba 4.17 (``smbd profiling level = count``) after
    one client fetched a 3 MiB file and put it back: the sums of count, inbytes and
    outbytes over the SMB2 calls."""
    profile = samba.parse_profile(PROFILE)
    # negprot 1, sesssetup 2, tcon 2, tdis 2, create 4, close 4, read, write, ioctl, find 2,
    # getinfo 2
    assert profile.requests == 22
    assert (profile.received_bytes, profile.sent_bytes) == (3148337, 3148789)
    assert profile.received_bytes >= 3 * 1024 * 1024  # the write's data
    assert profile.sent_bytes >= 3 * 1024 * 1024  # the read's data


def test_profile_of_nothing() -> None:
    assert samba.parse_profile("") == samba.Profile()
    assert samba.parse_profile('{"SMB2 Calls": {"smb2_read": "garbage"}}') == samba.Profile()
