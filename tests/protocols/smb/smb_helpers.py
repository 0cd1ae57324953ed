"""Real SMB clients for the system tests, logged in as ordinary Speicher users: Samba's
``smbclient`` command and the Python ``smbprotocol`` package (its high-level ``smbclient``
module for file work, its low-level classes for connections held open across changes).

Clients log in with the plain Speicher user name; the instance's Samba maps it to the
prefixed Unix account."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import smbclient  # type: ignore[import-untyped]
from smbprotocol.connection import Connection  # type: ignore[import-untyped]
from smbprotocol.create_contexts import SMB2CreateTimewarpToken  # type: ignore[import-untyped]
from smbprotocol.exceptions import (  # type: ignore[import-untyped]
    SMBException,
    SMBOSError,
    SMBResponseException,
)
from smbprotocol.ioctl import (  # type: ignore[import-untyped]
    CtlCode,
    IOCTLFlags,
    SMB2IOCTLRequest,
    SMB2IOCTLResponse,
    SMB2SrvSnapshotArray,
)
from smbprotocol.open import (  # type: ignore[import-untyped]
    CreateDisposition,
    CreateOptions,
    DirectoryAccessMask,
    FileAttributes,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
)
from smbprotocol.session import Session  # type: ignore[import-untyped]
from smbprotocol.tree import TreeConnect  # type: ignore[import-untyped]

import world
from speicher_testing import Daemon
from world import grant, make_pool, make_user, password

# the world-building helpers, for the protocol's tests to import from here
__all__ = ["grant", "make_pool", "make_user", "password"]

HOST = "127.0.0.1"

# NTSTATUS codes the tests expect (MS-ERREF)
ACCESS_DENIED = 0xC0000022
OBJECT_NAME_NOT_FOUND = 0xC0000034
OBJECT_PATH_NOT_FOUND = 0xC000003A
LOGON_FAILURE = 0xC000006D
ACCOUNT_DISABLED = 0xC0000072
DISK_FULL = 0xC000007F
NOT_FOUND = (OBJECT_NAME_NOT_FOUND, OBJECT_PATH_NOT_FOUND)


def make_share(
    daemon: Daemon,
    name: str,
    grants: dict[str, str],
    quota: str | None = None,
    **smb: Any,
) -> Path:
    """A share offered over SMB with ``grants`` (user -> rw/ro); returns its server path."""
    return world.make_share(daemon, name, grants, quota, smb={"enabled": True, **smb})


def set_smb(daemon: Daemon, share: str, **options: Any) -> dict[str, Any]:
    r = daemon.api.patch(f"/shares/{share}", json={"smb": options})
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()
    for key, value in options.items():
        assert info["smb"][key] == value, info["smb"]
    return info


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.25)


def smbd_pid(daemon: Daemon) -> int:
    return int((daemon.state_dir / "samba" / "pid" / "smbd.pid").read_text().strip())


# -- Samba's smbclient command ----------------------------------------------------------------


def run_smbclient(
    daemon: Daemon,
    share: str,
    *commands: str,
    user: str | None = None,
    secret: str | None = None,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``smbclient //127.0.0.1/SHARE -c 'cmd; cmd'`` as ``user`` (with their password unless
    ``secret`` is given), or as a guest (``-N``) when ``user`` is None. No system smb.conf is
    read, so the client behaves the same on every machine. Output is stdout plus stderr."""
    argv = ["smbclient", "-s", "/dev/null", "-p", str(daemon.smb_port), f"//{HOST}/{share}"]
    if user is None:
        argv.append("-N")
    else:
        argv += ["-U", f"{user}%{secret if secret is not None else password(user)}"]
    argv += [*options, "-c", "; ".join(commands)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return subprocess.CompletedProcess(
        argv, result.returncode, result.stdout + result.stderr, result.stderr
    )


def list_shares(daemon: Daemon, user: str) -> set[str]:
    """Disk shares ``smbclient -L`` shows ``user``."""
    result = subprocess.run(
        [
            "smbclient",
            "-s",
            "/dev/null",
            "-p",
            str(daemon.smb_port),
            "-L",
            HOST,
            "-U",
            f"{user}%{password(user)}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Sharename" in result.stdout, result.stdout + result.stderr
    return {
        m.group(1) for m in re.finditer(r"^\s+(\S+)\s+Disk\b", result.stdout, flags=re.MULTILINE)
    }


# -- smbprotocol, high level -------------------------------------------------------------------


class SmbUser:
    """smbprotocol's ``smbclient`` module for one user, with a connection cache of its own
    (the module's global cache would hand one user's session to the next)."""

    def __init__(self, daemon: Daemon, user: str, secret: str | None = None) -> None:
        self.port = daemon.smb_port
        self.user = user
        self.secret = secret if secret is not None else password(user)
        self.cache: dict[str, Any] = {}

    @staticmethod
    def unc(share: str, name: str = "") -> str:
        path = rf"\\{HOST}\{share}"
        return path + "\\" + name.replace("/", "\\") if name else path

    def _kw(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "username": self.user,
            "password": self.secret,
            "connection_cache": self.cache,
        }

    def write(self, share: str, name: str, data: bytes, mode: str = "wb") -> None:
        with smbclient.open_file(self.unc(share, name), mode=mode, **self._kw()) as fh:
            fh.write(data)

    def read(self, share: str, name: str) -> bytes:
        with smbclient.open_file(self.unc(share, name), mode="rb", **self._kw()) as fh:
            return cast(bytes, fh.read())

    def listdir(self, share: str, name: str = "") -> list[str]:
        return cast(list[str], smbclient.listdir(self.unc(share, name), **self._kw()))

    def mkdir(self, share: str, name: str) -> None:
        smbclient.mkdir(self.unc(share, name), **self._kw())

    def rmdir(self, share: str, name: str) -> None:
        smbclient.rmdir(self.unc(share, name), **self._kw())

    def remove(self, share: str, name: str) -> None:
        smbclient.remove(self.unc(share, name), **self._kw())

    def rename(self, share: str, old: str, new: str) -> None:
        smbclient.rename(self.unc(share, old), self.unc(share, new), **self._kw())

    def disk(self, share: str) -> tuple[int, int]:
        """Total and free bytes as the server reports them for the share."""
        result = smbclient.stat_volume(self.unc(share), **self._kw())
        return int(result.total_size), int(result.caller_available_size)

    def close(self) -> None:
        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self.cache)


@contextlib.contextmanager
def smb_user(daemon: Daemon, user: str, secret: str | None = None) -> Iterator[SmbUser]:
    client = SmbUser(daemon, user, secret)
    try:
        yield client
    finally:
        client.close()


def status_of(exc: BaseException) -> int:
    """The NTSTATUS an smbprotocol error carries."""
    if isinstance(exc, SMBOSError):
        return int(exc.ntstatus)
    if isinstance(exc, SMBResponseException):
        return int(exc.status)
    raise AssertionError(f"not an SMB status error: {exc!r}")


def refused(action: Callable[[], object], *statuses: int) -> int:
    """Run an SMB action that the server must refuse with one of ``statuses``."""
    try:
        action()
    except (SMBOSError, SMBResponseException) as exc:
        status = status_of(exc)
        assert status in statuses, f"{exc!r}: expected {[hex(s) for s in statuses]}"
        return status
    raise AssertionError("the server allowed it")


# -- smbprotocol, low level --------------------------------------------------------------------


class RawSmb:
    """One connection, session and tree connect of its own, with handles that stay open
    while the server changes around them."""

    def __init__(
        self,
        daemon: Daemon,
        user: str,
        share: str,
        secret: str | None = None,
        dialect: int | None = None,
    ) -> None:
        self.connection = Connection(uuid.uuid4(), HOST, daemon.smb_port)
        self.connection.connect(dialect=dialect, timeout=10)
        try:
            self.session = Session(
                self.connection,
                user,
                secret if secret is not None else password(user),
                require_encryption=False,
            )
            self.session.connect()
            self.tree = self.connect_tree(share)
        except BaseException:
            self.close()
            raise

    @property
    def dialect(self) -> int:
        return int(self.connection.dialect)

    def connect_tree(self, share: str) -> Any:
        tree = TreeConnect(self.session, rf"\\{HOST}\{share}")
        tree.connect()
        return tree

    def open(
        self,
        name: str,
        write: bool = False,
        tree: Any = None,
        timewarp: dt.datetime | None = None,
    ) -> Any:
        """Open (``write``: create or truncate) a file; ``timewarp`` opens it as it was in the
        snapshot of that time (the SMB2 TWrp create context Windows uses)."""
        access = FilePipePrinterAccessMask.GENERIC_READ
        if write:
            access |= FilePipePrinterAccessMask.GENERIC_WRITE
        contexts = None
        if timewarp is not None:
            token = SMB2CreateTimewarpToken()
            token["timestamp"] = timewarp
            contexts = [token]
        handle = Open(tree or self.tree, name.replace("/", "\\"))
        handle.create(
            ImpersonationLevel.Impersonation,
            access,
            FileAttributes.FILE_ATTRIBUTE_NORMAL,
            ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
            CreateDisposition.FILE_OVERWRITE_IF if write else CreateDisposition.FILE_OPEN,
            CreateOptions.FILE_NON_DIRECTORY_FILE,
            create_contexts=contexts,
        )
        return handle

    def snapshots(self) -> list[str]:
        """The share's previous versions as the server lists them to Windows Explorer
        (FSCTL_SRV_ENUMERATE_SNAPSHOTS on the share's root folder)."""
        root = Open(self.tree, "")
        root.create(
            ImpersonationLevel.Impersonation,
            DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_READ_ATTRIBUTES,
            FileAttributes.FILE_ATTRIBUTE_DIRECTORY,
            ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
            CreateDisposition.FILE_OPEN,
            CreateOptions.FILE_DIRECTORY_FILE,
        )
        try:
            request = SMB2IOCTLRequest()
            request["ctl_code"] = CtlCode.FSCTL_SRV_ENUMERATE_SNAPSHOTS
            request["file_id"] = root.file_id
            request["max_output_response"] = 65536
            request["flags"] = IOCTLFlags.SMB2_0_IOCTL_IS_FSCTL
            sent = self.connection.send(
                request, sid=self.session.session_id, tid=self.tree.tree_connect_id
            )
            response = SMB2IOCTLResponse()
            response.unpack(self.connection.receive(sent)["data"].get_value())
            array = SMB2SrvSnapshotArray()
            array.unpack(response["buffer"].get_value())
            text: str = array["snapshots"].get_value().decode("utf-16-le")
            return [name for name in text.split("\0") if name]
        finally:
            root.close()

    def close(self) -> None:
        """Log off and disconnect; quietly, as the server may have dropped us already."""
        with contextlib.suppress(SMBException, OSError, ValueError):
            self.connection.disconnect(close=True, timeout=5)
        with contextlib.suppress(SMBException, OSError, ValueError):
            self.connection.disconnect(close=False)


@contextlib.contextmanager
def raw_smb(
    daemon: Daemon,
    user: str,
    share: str,
    secret: str | None = None,
    dialect: int | None = None,
) -> Iterator[RawSmb]:
    client = RawSmb(daemon, user, share, secret, dialect)
    try:
        yield client
    finally:
        client.close()


def dropped(action: Callable[[], object], timeout: float = 10) -> BaseException:
    """Repeat ``action`` on an existing connection until the server has dropped it; return the
    error. The server ends the session asynchronously, so the first try may still pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
        except (SMBException, OSError) as exc:
            return exc
        assert time.monotonic() < deadline, f"the connection still works after {timeout} s"
        time.sleep(0.2)
