"""The SSH session channel of an SFTP login: the ``sftp`` subsystem, nothing else.

asyncssh's own session (``sftp_factory``) is used almost as it is; two things differ:

- Only the ``sftp`` subsystem is accepted: no shell, no exec (so no legacy ``scp -O``), no
  other subsystem. (asyncssh refuses those too without a session factory; this class says
  so by itself.)
- A WRITE request may carry bytes after its data. rclone (Go's pkg/sftp) sends the last write
  of a file padded with the rest of its 32 KiB buffer; OpenSSH's sftp-server skips whatever
  follows a request, asyncssh answers SSH_FX_BAD_MESSAGE and rclone fails every file whose
  size is not a multiple of 32 KiB. The handler here reads the write's fields and ignores
  the rest, as OpenSSH does.

Relies on asyncssh internals (the handler's dispatch table and its ``_server`` and
``_file_handles``), which is why asyncssh is pinned; the rclone tests fail if it changes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

from asyncssh import SFTPServer
from asyncssh.constants import FXP_WRITE
from asyncssh.packet import SSHPacket
from asyncssh.sftp import SFTPInvalidHandle, SFTPServerHandler
from asyncssh.stream import SSHReader, SSHServerStreamSession, SSHWriter

SFTP_VERSION = 3  # what OpenSSH, rclone and sshfs speak; asyncssh's default


class _Handler(SFTPServerHandler):
    async def _process_padded_write(self, packet: SSHPacket) -> int:
        handle = packet.get_string()
        offset = packet.get_uint64()
        data = packet.get_string()
        # no packet.check_end(): see the module's doc
        file_obj = self._file_handles.get(handle)
        if not file_obj:
            raise SFTPInvalidHandle("Invalid file handle")
        result: Any = self._server.write(file_obj, offset, data)
        if inspect.isawaitable(result):
            result = await result
        return int(result)

    _packet_handlers = {  # noqa: RUF012 - asyncssh's own dispatch table, copied
        **SFTPServerHandler._packet_handlers,
        FXP_WRITE: cast(Any, _process_padded_write),
    }


class SftpOnly(SSHServerStreamSession[bytes]):
    """One session channel; ``factory`` makes the SFTP server for it."""

    def __init__(self, factory: Callable[[Any], SFTPServer]) -> None:
        super().__init__(None, factory, SFTP_VERSION, False)

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def session_started(self) -> None:
        chan = self._chan
        assert chan is not None and self._conn is not None
        reader = SSHReader[bytes](self, chan)
        writer = SSHWriter[bytes](self, chan)
        server = self._init_sftp_server()
        assert isinstance(server, SFTPServer)
        handler = _Handler(server, reader, writer, SFTP_VERSION)
        self._conn.create_task(handler.run(), reader.logger)
