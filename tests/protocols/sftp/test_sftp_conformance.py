"""The shared file semantics (tests/files/conformance.py) over SFTP, with asyncssh's client.

A path of the suite is sent as ``/<share>/<path>`` in UTF-8, as typed: the server's lexical
resolution and ShareFS decide what it means. SFTP version 3 has only five status codes, so a
refusal's kind comes from the code and, for "failure", from the server's own words."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest
from conformance import Conformance, FileClient, Refused, Stat, World
from sftp_helpers import HOST, make_pool, make_share, make_user, password

from speicher_testing import Daemon

pytestmark = pytest.mark.system

USERS = {"rw": "rita", "ro": "otto", "none": "nora", "disabled": "dora"}
QUOTA = 32 * 1024 * 1024
T = TypeVar("T")


def kind_of(exc: asyncssh.SFTPError) -> str:
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return "not_found"
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return "denied"
    reason = exc.reason.lower()
    for words, kind in (
        ("exists", "exists"),
        ("not empty", "not_empty"),
        ("no space", "no_space"),
    ):
        if words in reason:
            return kind
    return "invalid"


class SftpFiles:
    """One user's SFTP session, for one share; every call runs on the client's own loop."""

    def __init__(self, daemon: Daemon, user: str, share: str) -> None:
        self.share = share
        self.loop = asyncio.new_event_loop()
        try:
            self.conn: asyncssh.SSHClientConnection = self._do(
                asyncssh.connect(
                    HOST,
                    daemon.sftp_port,
                    username=user,
                    password=password(user),
                    known_hosts=None,
                    client_keys=None,
                    agent_path=None,
                    preferred_auth="password",
                    config=None,
                )
            )
        except asyncssh.PermissionDenied as exc:
            self.loop.close()
            raise Refused("denied", str(exc)) from None
        self.sftp: asyncssh.SFTPClient = self._do(self.conn.start_sftp_client())

    def _do(self, coro: Awaitable[T]) -> T:
        try:
            return self.loop.run_until_complete(coro)
        except asyncssh.SFTPError as exc:
            raise Refused(kind_of(exc), exc.reason) from None

    def _path(self, path: str) -> bytes:
        return f"/{self.share}/{path}".encode("utf-8", "surrogatepass")

    async def _put(self, path: str, data: bytes) -> None:
        async with self.sftp.open(self._path(path), "wb", encoding=None) as fh:
            await fh.write(data)

    def put(self, path: str, data: bytes) -> None:
        self._do(self._put(path, data))

    async def _get(self, path: str, start: int | None, end: int | None) -> bytes:
        async with self.sftp.open(self._path(path), "rb", encoding=None) as fh:
            offset = start or 0
            size = -1 if end is None else end - offset
            data: Any = await fh.read(size, offset)
            return bytes(data)

    def get(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        return self._do(self._get(path, start, end))

    def list(self, path: str) -> dict[str, Stat]:
        names = self._do(self.sftp.readdir(self._path(path)))
        out = {}
        for name in names:
            filename = name.filename
            text = filename.decode() if isinstance(filename, bytes) else filename
            if text in (".", ".."):
                continue
            out[text] = self._stat_of(text, name.attrs)
        return out

    @staticmethod
    def _stat_of(name: str, attrs: asyncssh.SFTPAttrs) -> Stat:
        is_dir = attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY
        return Stat(name, is_dir, 0 if is_dir else attrs.size or 0, float(attrs.mtime or 0))

    def stat(self, path: str) -> Stat:
        attrs = self._do(self.sftp.stat(self._path(path)))
        return self._stat_of(path.rsplit("/", 1)[-1], attrs)

    def mkdir(self, path: str) -> None:
        self._do(self.sftp.mkdir(self._path(path)))

    def rmdir(self, path: str) -> None:
        self._do(self.sftp.rmdir(self._path(path)))

    def delete(self, path: str) -> None:
        self._do(self.sftp.remove(self._path(path)))

    def rename(self, src: str, dst: str) -> None:
        # a file replaces an existing file: posix-rename@openssh.com, as OpenSSH's sftp does
        self._do(self.sftp.posix_rename(self._path(src), self._path(dst)))

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.sftp.exit()
        self.conn.close()
        self.loop.run_until_complete(self.conn.wait_closed())
        self.loop.close()


@pytest.fixture(scope="module")
def folders(daemon: Daemon) -> dict[str, Path]:
    make_pool(daemon)
    for user in USERS.values():
        make_user(daemon, user)
    grants = {"rita": "rw", "otto": "ro", "dora": "rw"}
    made = {
        "main": make_share(daemon, "main", grants),
        "other": make_share(daemon, "other", {"rita": "rw"}),
        "small": make_share(daemon, "small", {"rita": "rw"}, quota=str(QUOTA)),
    }
    r = daemon.api.patch("/users/dora", json={"enabled": False})
    assert r.status_code == 200, r.text
    return made


class TestSftp(Conformance):
    @pytest.fixture
    def world(self, daemon: Daemon, folders: dict[str, Path]) -> Iterator[World]:
        def connect(role: str, share: str) -> FileClient:
            return SftpFiles(daemon, USERS[role], share)

        world = World(connect=connect, folder=folders.__getitem__, quota=QUOTA)
        yield world
        for client in world.made:
            client.close()
