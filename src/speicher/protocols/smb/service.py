"""SMB through a managed Samba: render smb.conf from the model, keep Samba's passdb in step
with Speicher's users, supervise smbd, reload it on every change."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shlex
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from speicher.access import UserService
from speicher.audit.records import Record
from speicher.audit.smb import SmbAuditParser
from speicher.audit.smb import prefix as audit_prefix
from speicher.config import Settings
from speicher.db import Database, Share, SmbSettings
from speicher.errors import Validator, translated
from speicher.events import EventService
from speicher.hooks import SHARES_CHANGED, USER_DELETED, USER_PASSWORD, USER_STATE, Hooks
from speicher.protocols.smb import render
from speicher.protocols.smb.models import (
    SmbOpenFileInfo,
    SmbSessionInfo,
    SmbSettingsInfo,
    SmbSettingsUpdate,
    SmbStatusInfo,
)
from speicher.protocols.smb.supervisor import Supervisor
from speicher.storage.shares import share_path, snapshots_dir
from speicher.system import btrfs, files, samba
from speicher.system.run import CommandError

log = logging.getLogger(__name__)

# SMB logins: after this many wrong passwords in a row an account is locked for some minutes
# (Windows 11's defaults: 10 attempts, 10 minutes). Someone who knows a user name can lock
# that user out for as long; without a lockout, passwords can be guessed at network speed.
LOCKOUT_POLICY = {
    "bad lockout attempt": 10,
    "lockout duration": 10,  # minutes
    "reset count minutes": 10,  # the count of wrong passwords is forgotten after this
}

# How often the free space clients see is refreshed: a share that filled up must not look empty
# to clients for the monitor's interval (a minute by default).
DFREE_INTERVAL = 5.0

_NETBIOS = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,14}")
_INTERFACE = re.compile(r"[A-Za-z0-9.:/_-]{1,64}")

# Samba runs a share's dfree command as the connected user, with no arguments of ours (it
# takes the whole parameter as the program), so each share gets its own tiny script.
DFREE_SCRIPT = """#!/bin/sh
# Written by Speicher: the size and free space (1K blocks) of a share as its quota leaves
# them. The daemon keeps the figures up to date.
exec cat {figures}
"""


def dfree_script(figures: Path) -> str:
    """The dfree script for one share: shell text, so the path is quoted for the shell (and a
    path with a control character, which no quoting makes one line, is refused)."""
    if any(render.is_control(c) for c in str(figures)):
        raise ValueError(f"{str(figures)!r} contains a control character")
    return DFREE_SCRIPT.format(figures=shlex.quote(str(figures)))


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write atomically (temp file, fsync, rename); return whether the content changed. The
    temp file's name is unique: the monitor and a request may write the same file at once
    (a shared name made one of them fail with FileNotFoundError, a 500)."""
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return False
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


class SmbService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        hooks: Hooks,
        users: UserService,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.users = users
        self.dir = settings.state_dir / "samba"
        self.conf = self.dir / "smb.conf"
        self.usermap = self.dir / "usermap"
        self.dfree_dir = settings.public_dir / "dfree"
        self._listening: tuple[int, tuple[str, ...]] | None = None
        self._dfree_lock = threading.Lock()
        self._dfree_stop = threading.Event()
        self._dfree_thread: threading.Thread | None = None
        self.supervisor = Supervisor(
            "smbd",
            lambda: samba.smbd_argv(self.conf),
            self.dir / "smbd.log",
            lambda: self._global()[1],
            self._restarted,
            lambda: samba.helper_pids(self.conf),
            self._line,
            self._lines_read,
        )
        # the audit log's SMB lines (audit/smb.py): a token of this start marks them
        self.audit_token = secrets.token_hex(8)
        self.audit: SmbAuditParser | None = None
        self._expired = time.monotonic()
        hooks.subscribe(SHARES_CHANGED, lambda **_: self.apply())
        hooks.subscribe(USER_PASSWORD, self._password)
        hooks.subscribe(USER_STATE, self._state)
        hooks.subscribe(USER_DELETED, self._deleted)

    # -- the audit log ---------------------------------------------------------------------------

    def attach_audit(self, add: Callable[[Record], None]) -> None:
        """Record SMB's file operations (vfs_full_audit on every share) with ``add``."""
        self.audit = SmbAuditParser(self.audit_token, self._audited_shares, self._user_of, add)

    def _line(self, line: bytes) -> bool:
        """A line of smbd's output: an audit line is taken, anything else goes to smbd.log."""
        audit = self.audit
        if audit is None:
            return False
        text = line.decode(errors="replace")
        if not audit.is_audit(text):
            return False
        audit.feed(text)
        return True

    def _lines_read(self) -> None:
        """After the lines of one read of smbd's output."""
        audit = self.audit
        if audit is None:
            return
        if time.monotonic() - self._expired > 5:
            self._expired = time.monotonic()
            audit.expire()
        audit.settle()  # last: it closes the folders the lines opened

    def _audited_shares(self) -> dict[str, tuple[str, bool]]:
        with self.db.session() as s:
            query = select(Share).where(Share.smb_enabled.is_(True))
            return {
                share.name: (
                    str(share_path(self.settings, share.pool.name, share.name)),
                    share.audit_reads,
                )
                for share in s.scalars(query)
            }

    def _user_of(self, unix: str) -> str:
        prefix = self.settings.account_prefix
        return unix[len(prefix) :] if prefix and unix.startswith(prefix) else unix

    # -- files ---------------------------------------------------------------------------------

    def _dirs(self) -> render.SambaDirs:
        d = self.dir
        return render.SambaDirs(
            private=str(d / "private"),
            lock=str(d / "lock"),
            state=str(d / "state"),
            cache=str(d / "cache"),
            pid=str(d / "pid"),
            ncalrpc=str(d / "ncalrpc"),
        )

    def prepare(self) -> None:
        """Create Samba's directories and the dfree helper, and write smb.conf."""
        # smbd, acting as the connected user, checks that other smbd processes holding share
        # modes are alive through files in the lock directory: users must be able to reach
        # it, or sharing violations go unenforced and smbd crashes. Passwords stay private.
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o711)  # noqa: S103 - traversable, not listable
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
            (self.dir / sub).mkdir(exist_ok=True)
        os.chmod(self.dir / "private", 0o700)
        os.chmod(self.dir / "lock", 0o755)  # noqa: S103 - see above
        self.settings.public_dir.mkdir(exist_ok=True)
        os.chmod(self.settings.public_dir, 0o755)  # noqa: S103 - read by users' processes
        self.dfree_dir.mkdir(exist_ok=True)
        os.chmod(self.dfree_dir, 0o755)  # noqa: S103 - read by users' processes
        self.write_usermap()
        self.apply()
        with translated("setting Samba's lockout policy"):
            for name, value in LOCKOUT_POLICY.items():
                samba.set_account_policy(self.conf, name, value)
        self._check_users()

    def _check_users(self) -> None:
        """Samba keeps its own password hashes; a user missing there (a restored database,
        say) cannot log in over SMB until their password is set again."""
        present = set(samba.users(self.conf))
        for user in self.users.list():
            if user.file_access and user.unix_name not in present:
                self.events.record(
                    "warning",
                    "smb.no-password",
                    user.name,
                    f"user {user.name} has no SMB password; set one with 'speicher user passwd'",
                )

    def _settings_row(self) -> SmbSettings:
        with self.db.session() as s:
            row = s.get(SmbSettings, 1)
            if row is None:
                row = SmbSettings(
                    id=1, workgroup="WORKGROUP", server_name="", interfaces="", signing="default"
                )
                s.add(row)
                s.flush()
            s.expunge(row)
            return row

    def _global(self) -> tuple[SmbSettings, int, list[str]]:
        row = self._settings_row()
        port = row.port or self.settings.smb_port
        interfaces = row.interfaces.split() if row.interfaces else []
        return row, port, interfaces

    def _shares(self) -> list[render.ShareOptions]:
        prefix = self.settings.account_prefix
        out = []
        with self.db.session() as s:
            query = select(Share).where(Share.smb_enabled.is_(True), Share.state == "ready")
            for share in s.scalars(query):
                if not os.path.ismount(self.settings.mount_root / share.pool.name):
                    continue  # never offer the empty folder an unmounted pool leaves
                readers: list[str] = []
                writers: list[str] = []
                for g in share.grants:
                    who = f"{prefix}{g.user.name}" if g.user else f"+{prefix}{g.group.name}"  # type: ignore[union-attr]
                    writes = g.access == "rw" and not share.read_only
                    (writers if writes else readers).append(who)
                if not readers and not writers and not share.smb_guest:
                    continue  # nobody may use it: do not offer it at all
                pool = share.pool.name
                out.append(
                    render.ShareOptions(
                        name=share.name,
                        path=str(share_path(self.settings, pool, share.name)),
                        snapshots=str(snapshots_dir(self.settings, pool, share.name)),
                        comment=share.description,
                        readers=readers,
                        writers=writers,
                        browseable=share.smb_browseable,
                        abe=share.smb_abe,
                        recycle=share.smb_recycle,
                        mac=share.smb_fruit,
                        time_machine=share.smb_time_machine,
                        time_machine_size=share.smb_time_machine_size,
                        encrypt=share.smb_encrypt,
                        guest=share.smb_guest,
                        dfree_command=str(self.dfree_dir / f"{share.name}.sh"),
                        audit=self.audit is not None,
                    )
                )
        return out

    def render_text(self) -> str:
        row, port, interfaces = self._global()
        glob = render.GlobalOptions(
            workgroup=row.workgroup,
            server_name=row.server_name,
            port=port,
            interfaces=interfaces,
            dirs=self._dirs(),
            username_map=str(self.usermap) if self.settings.account_prefix else None,
            signing_required=row.signing == "required",
            audit_prefix=audit_prefix(self.audit_token) if self.audit is not None else None,
        )
        return render.to_text(render.smb_conf(glob, self._shares()))

    def apply(self) -> None:
        """Write smb.conf if it changed and make smbd use it: a reload, which keeps every
        connection; only a new port or address list needs a restart."""
        changed = write_if_changed(self.conf, self.render_text(), 0o644)
        if self.audit is not None:
            self.audit.refresh()
        self.update_dfree()
        if not self.supervisor.running:
            return
        _, port, interfaces = self._global()
        if self._listening != (port, tuple(interfaces)):
            self._listening = (port, tuple(interfaces))
            self.supervisor.restart()
        elif changed:
            with translated("reloading Samba"):
                samba.reload_config(self.conf)

    # -- users -----------------------------------------------------------------------------------

    def write_usermap(self) -> None:
        """Clients log in as ``alice``; with an account prefix the Unix account is
        ``<prefix>alice``: Samba's username map connects the two."""
        prefix = self.settings.account_prefix
        if not prefix:
            return
        names = {
            unix: unix[len(prefix) :]
            for unix in samba.users(self.conf)
            if unix.startswith(prefix) and len(unix) > len(prefix)
        }
        write_if_changed(self.usermap, render.usermap_text(names), 0o644)

    def _password(self, name: str, unix_name: str, password: str) -> None:
        with translated("setting the SMB password"):
            samba.set_password(self.conf, unix_name, password)
            self._unlock(name, unix_name)
        self.write_usermap()

    def _unlock(self, name: str, unix_name: str) -> None:
        """A new password, or enabling the account, ends a lockout (an admin's act)."""
        if samba.unlock(self.conf, unix_name):
            self.events.record("info", "smb.unlocked", name, f"SMB lockout of {name} ended")

    def _state(self, name: str, unix_name: str, enabled: bool) -> None:
        with translated("changing the SMB account"):
            samba.set_enabled(self.conf, unix_name, enabled)
            if enabled:
                self._unlock(name, unix_name)
        if not enabled:
            self.disconnect(unix_name)

    def _deleted(self, name: str, unix_name: str) -> None:
        self.disconnect(unix_name)
        with translated("removing the SMB account"):
            samba.delete_user(self.conf, unix_name)
        self.write_usermap()

    def disconnect(self, unix_name: str) -> int:
        """End every SMB session of a user at once; return how many."""
        ended = 0
        for session in samba.status(self.conf).sessions:
            if session.username == unix_name and session.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(session.pid, signal.SIGTERM)
                    ended += 1
        return ended

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        _, port, interfaces = self._global()
        self._listening = (port, tuple(interfaces))
        self.supervisor.start()
        if not self.supervisor.running:
            self.events.record("error", "smb.failed", "smbd", "smbd did not start; see smbd.log")
        self._dfree_stop.clear()
        self._dfree_thread = threading.Thread(
            target=self._refresh_dfree, name="smb-dfree", daemon=True
        )
        self._dfree_thread.start()

    def stop(self) -> None:
        self._dfree_stop.set()
        if self._dfree_thread is not None:
            self._dfree_thread.join(30)
        self.supervisor.stop()

    def _refresh_dfree(self) -> None:
        interval = min(DFREE_INTERVAL, self.settings.monitor_interval)
        while not self._dfree_stop.wait(interval):
            try:
                self.update_dfree()
            except Exception:  # the next round tries again; a log line, never a dead thread
                log.exception("refreshing the SMB free space figures failed")

    def _restarted(self, code: int | None) -> None:
        self.events.record(
            "warning", "smb.restarted", "smbd", f"smbd exited (code {code}) and was restarted"
        )

    # -- settings and status ---------------------------------------------------------------------

    def get_settings(self) -> SmbSettingsInfo:
        row, port, interfaces = self._global()
        return SmbSettingsInfo(
            workgroup=row.workgroup,
            server_name=row.server_name,
            port=port,
            interfaces=interfaces,
            running=self.supervisor.running,
            min_protocol="SMB2_02",
            signing="required" if row.signing == "required" else "default",
        )

    def update_settings(self, req: SmbSettingsUpdate) -> SmbSettingsInfo:
        v = Validator()
        if req.workgroup is not None and not _NETBIOS.fullmatch(req.workgroup):
            v.add("workgroup", "must be 1-15 letters, digits and '-'")
        if req.server_name and not _NETBIOS.fullmatch(req.server_name):
            v.add("server_name", "must be 1-15 letters, digits and '-'")
        for i, interface in enumerate(req.interfaces or []):
            if not _INTERFACE.fullmatch(interface):
                v.add(f"interfaces.{i}", f"'{interface}' is not an interface name or address")
        v.check()
        with self.db.session() as s:
            row = s.get(SmbSettings, 1) or SmbSettings(id=1, workgroup="WORKGROUP")
            if req.workgroup is not None:
                row.workgroup = req.workgroup.upper()
            if req.server_name is not None:
                row.server_name = req.server_name.upper()
            if req.port is not None:
                row.port = req.port
            if req.interfaces is not None:
                row.interfaces = " ".join(req.interfaces)
            if req.signing is not None:
                row.signing = req.signing
            s.add(row)
        self.apply()
        self.events.record("info", "smb.settings", "smbd", "SMB settings changed")
        return self.get_settings()

    def status(self) -> SmbStatusInfo:
        prefix = self.settings.account_prefix
        st = samba.status(self.conf)

        def speicher_name(unix: str) -> str:
            return unix[len(prefix) :] if prefix and unix.startswith(prefix) else unix

        return SmbStatusInfo(
            running=self.supervisor.running,
            sessions=[
                SmbSessionInfo(
                    user=speicher_name(x.username),
                    remote=x.remote,
                    protocol=x.protocol,
                    encryption=x.encryption,
                    pid=x.pid,
                )
                for x in st.sessions
            ],
            open_files=[
                SmbOpenFileInfo(
                    user=speicher_name(f.username), share_path=f.share_path, name=f.name
                )
                for f in st.open_files
            ],
        )

    # -- housekeeping (called by the daemon's monitor) -----------------------------------------

    def update_dfree(self) -> None:
        """Write each SMB share's size and free space as its quota leaves them, so clients see
        the quota (not the pool) as the disk's size.

        btrfs updates a quota group's figures only when it commits a transaction (every 30 s),
        so each pool with a quota'd share is synced first: right after an upload filled a
        share, its figures say it is full. A sync with nothing to write costs next to
        nothing."""
        with self._dfree_lock:
            self._update_dfree()

    def _update_dfree(self) -> None:
        shares = self._shares()
        quotas: dict[str, int | None] = {}
        with self.db.session() as s:
            for share in s.scalars(select(Share).where(Share.name.in_([o.name for o in shares]))):
                quotas[share.name] = share.quota
        synced: set[Path] = set()
        for opts in shares:
            path = Path(opts.path)
            quota = quotas.get(opts.name)
            try:
                st = os.statvfs(path)
            except OSError:
                continue
            if quota is not None and path.parent not in synced:
                with contextlib.suppress(CommandError):
                    btrfs.sync(path.parent)  # the pool's mount point
                synced.add(path.parent)
            total = st.f_blocks * st.f_frsize
            free = st.f_bavail * st.f_frsize
            if quota is not None:
                with contextlib.suppress(CommandError, ValueError):
                    used = btrfs.qgroup_show(path).referenced
                    total = min(total, quota)
                    free = max(0, min(free, quota - used))
            figures = self.dfree_dir / opts.name
            write_if_changed(figures, f"{total // 1024} {free // 1024}\n")
            write_if_changed(self.dfree_dir / f"{opts.name}.sh", dfree_script(figures), 0o755)

    def purge_recycle(self) -> None:
        """Delete what lay in a share's recycle folder longer than the share keeps it."""
        with self.db.session() as s:
            shares = [
                (sh.pool.name, sh.name, sh.smb_recycle_days)
                for sh in s.scalars(select(Share).where(Share.smb_recycle.is_(True)))
            ]
        for pool, name, days in shares:
            folder = share_path(self.settings, pool, name) / render.RECYCLE_DIR
            if not folder.is_dir():
                continue
            files.delete_older_than(folder, days)
