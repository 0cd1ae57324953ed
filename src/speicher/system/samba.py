"""Samba: ``smbd``, ``smbcontrol``, ``smbpasswd``, ``pdbedit``, ``smbstatus``.

Every command gets our own ``smb.conf`` (``--configfile``), so Speicher's Samba never touches
a system Samba's files and several instances can run side by side.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speicher.system.run import CommandError, run


@dataclass(frozen=True)
class Session:
    session_id: str
    pid: int
    username: str
    remote: str
    protocol: str
    encryption: str


@dataclass(frozen=True)
class OpenFile:
    pid: int
    username: str
    share_path: str
    name: str


@dataclass(frozen=True)
class Status:
    sessions: list[Session] = field(default_factory=list)
    open_files: list[OpenFile] = field(default_factory=list)
    shares: dict[str, list[int]] = field(default_factory=dict)  # share -> pids connected


def smbd_argv(conf: Path) -> list[str]:
    """Run smbd in the foreground as our child, logging to stdout."""
    return ["smbd", "--foreground", "--no-process-group", f"--configfile={conf}", "--debug-stdout"]


def reload_config(conf: Path) -> None:
    """Tell the running smbd (and its children) to re-read smb.conf; connections stay.

    The message is asynchronous; a ping answered by the parent smbd afterwards proves it has
    reloaded, so a client connecting right after this returns gets the new settings (global
    ones such as guest mapping are fixed when a connection's process is forked)."""
    run(["smbcontrol", f"--configfile={conf}", "smbd", "reload-config"], timeout=30)
    run(["smbcontrol", "--timeout=10", f"--configfile={conf}", "smbd", "ping"], timeout=30)


def set_password(conf: Path, unix_name: str, password: str) -> None:
    """Add the user to Samba's passdb, or change their password."""
    run(
        ["smbpasswd", "-c", str(conf), "-s", "-a", unix_name],
        input=f"{password}\n{password}\n",
        timeout=30,
    )


def set_enabled(conf: Path, unix_name: str, enabled: bool) -> None:
    run(["smbpasswd", "-c", str(conf), "-e" if enabled else "-d", unix_name], timeout=30)


def delete_user(conf: Path, unix_name: str) -> None:
    result = run(
        ["pdbedit", f"--configfile={conf}", "-x", "-u", unix_name], check=False, timeout=30
    )
    if result.returncode != 0 and unix_name in users(conf):
        raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)


def account_policy(conf: Path, name: str) -> int:
    """An account policy of the passdb (``pdbedit -P``), e.g. ``bad lockout attempt``."""
    out = run(["pdbedit", f"--configfile={conf}", "-P", name], timeout=30).stdout
    m = re.search(r"value is: (-?\d+)", out)
    if m is None:
        raise CommandError(["pdbedit", "-P", name], 0, out, "no value in pdbedit's output")
    return int(m[1])


def set_account_policy(conf: Path, name: str, value: int) -> None:
    """Set an account policy if it differs (``pdbedit -P NAME -C VALUE``)."""
    if account_policy(conf, name) != value:
        run(["pdbedit", f"--configfile={conf}", "-P", name, "-C", str(value)], timeout=30)


def account_flags(conf: Path, unix_name: str) -> str:
    """The account's flags as pdbedit shows them, e.g. ``U`` or ``DUL`` (disabled, locked)."""
    out = run(["pdbedit", f"--configfile={conf}", "-v", "-u", unix_name], timeout=30).stdout
    m = re.search(r"^Account Flags:\s*\[([A-Z ]*)\]", out, flags=re.MULTILINE)
    if m is None:
        raise CommandError(["pdbedit", "-v", "-u", unix_name], 0, out, "no account flags")
    return m[1].replace(" ", "")


# The flags ``pdbedit -c`` sets; giving the list without L clears a lockout and keeps the rest.
_SETTABLE_FLAGS = "NDHX"


def unlock(conf: Path, unix_name: str) -> bool:
    """End a lockout after too many wrong passwords: clear the L flag and the bad password
    count. Neither a new password nor enabling the account does that in Samba. Returns
    whether the account was locked."""
    flags = account_flags(conf, unix_name)
    if "L" not in flags:
        return False
    keep = "".join(f for f in _SETTABLE_FLAGS if f in flags)
    run(["pdbedit", f"--configfile={conf}", "-u", unix_name, "-c", f"[{keep}]"], timeout=30)
    run(["pdbedit", f"--configfile={conf}", "-u", unix_name, "-z"], timeout=30)
    return True


def users(conf: Path) -> list[str]:
    """Unix names of the users in Samba's passdb."""
    result = run(["pdbedit", f"--configfile={conf}", "-L"], check=False, timeout=30)
    return [line.split(":", 1)[0] for line in result.stdout.splitlines() if ":" in line]


def parse_status(output: str) -> Status:
    """Parse ``smbstatus --json``."""
    data: dict[str, Any] = json.loads(output) if output.strip() else {}
    sessions = []
    for s in (data.get("sessions") or {}).values():
        server = s.get("server_id") or {}
        sessions.append(
            Session(
                session_id=str(s.get("session_id", "")),
                pid=int(server.get("pid", 0)),
                username=str(s.get("username", "")),
                remote=str(s.get("remote_machine") or s.get("hostname") or ""),
                protocol=str(s.get("session_dialect", "")),
                encryption=str((s.get("encryption") or {}).get("cipher", "")).strip("-"),
            )
        )
    users_by_pid = {s.pid: s.username for s in sessions}
    shares: dict[str, list[int]] = {}
    for t in (data.get("tcons") or {}).values():
        pid = int((t.get("server_id") or {}).get("pid", 0))
        shares.setdefault(str(t.get("service", "")), []).append(pid)
    files = []
    for f in (data.get("open_files") or {}).values():
        for opened in (f.get("opens") or {}).values():
            pid = int((opened.get("server_id") or {}).get("pid", 0))
            files.append(
                OpenFile(
                    pid=pid,
                    username=users_by_pid.get(pid, str(opened.get("uid", ""))),
                    share_path=str(f.get("service_path", "")),
                    name=str(f.get("filename", "")),
                )
            )
    return Status(sessions=sessions, open_files=files, shares=shares)


def status(conf: Path) -> Status:
    result = run(["smbstatus", f"--configfile={conf}", "--json"], check=False, timeout=30)
    if result.returncode != 0:
        return Status()
    return parse_status(result.stdout)


@dataclass(frozen=True)
class Profile:
    """What smbd counted of its SMB2 calls since it started (``smbd profiling level``)."""

    requests: int = 0
    received_bytes: int = 0  # the requests' bytes, writes' data included
    sent_bytes: int = 0  # the answers' bytes, reads' data included


def parse_profile(output: str) -> Profile:
    """Parse ``smbstatus --profile --json``: the sums over every SMB2 call. smbd counts calls
    and bytes per call, not failed calls."""
    data: dict[str, Any] = json.loads(output) if output.strip() else {}
    calls = data.get("SMB2 Calls") or {}
    requests = received = sent = 0
    for call in calls.values():
        if isinstance(call, dict):
            requests += int(call.get("count", 0))
            received += int(call.get("inbytes", 0))
            sent += int(call.get("outbytes", 0))
    return Profile(requests, received, sent)


def profile(conf: Path) -> Profile | None:
    """smbd's counters, or None when smbstatus cannot read them."""
    result = run(
        ["smbstatus", f"--configfile={conf}", "--profile", "--json"], check=False, timeout=30
    )
    if result.returncode != 0:
        return None
    try:
        return parse_profile(result.stdout)
    except (ValueError, TypeError, AttributeError):
        return None


def helper_pids(conf: Path) -> list[int]:
    """Samba processes started for our smb.conf (samba-dcerpcd, rpcd_*) that outlive smbd."""
    needle = f"--configfile={conf}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids
