"""The SSH session channel of an SFTP login: the ``sftp`` subsystem, nothing else.

asyncssh's own session (``sftp_factory``) is used almost as it is; two things differ:

- Only the ``sftp`` subsystem is accepted: no shell, no exec (so no legacy ``scp -O``), no
  other subsystem. (asyncssh refuses those too without a session factory; this class says
  so by itself.)
- Every request is counted for /metrics (``metrics/counters.py``): WRITE's data as bytes
  received, READ's as bytes sent, and an answer with an error status as an error (SSH_FX_FAILURE
  the server's, the others, such as no such file, the client's).
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
from asyncssh.constants import FX_EOF, FX_FAILURE, FX_OK, FXP_DATA, FXP_STATUS, FXP_WRITE
from asyncssh.packet import SSHPacket
from asyncssh.sftp import SFTPInvalidHandle, SFTPServerHandler
from asyncssh.stream import SSHReader, SSHServerStreamSession, SSHWriter

from speicher.metrics.counters import RECEIVED, ProtocolCounters

SFTP_VERSION = 3  # what OpenSSH, rclone and sshfs speak; asyncssh's default


class _Handler(SFTPServerHandler):
    counters: ProtocolCounters

    async def _process_packet(self, pkttype: int, pktid: int, packet: SSHPacket) -> None:
        self._answered = False
        await super()._process_packet(pkttype, pktid, packet)
        if not self._answered:  # the channel closed before the answer
            self.counters.request("sftp", 0, 0, False, False)

    def send_packet(self, pkttype: int, pktid: int | None, *args: bytes) -> None:
        super().send_packet(pkttype, pktid, *args)
        if pktid is None or len(args) < 2:
            return  # the version exchange
        self._answered = True
        sent = client_error = server_error = 0
        if pkttype == FXP_DATA:
            sent = max(0, len(args[1]) - 4)
        elif pkttype == FXP_STATUS and len(args[1]) >= 4:
            code = int.from_bytes(args[1][:4], "big")
            server_error = code == FX_FAILURE
            client_error = code not in (FX_OK, FX_EOF, FX_FAILURE)
        self.counters.request("sftp", 0, sent, bool(client_error), bool(server_error))

    async def _process_padded_write(self, packet: SSHPacket) -> int:
        handle = packet.get_string()
        offset = packet.get_uint64()
        data = packet.get_string()
        self.counters.add("sftp", RECEIVED, len(data))
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

    def __init__(
        self, factory: Callable[[Any], SFTPServer], counters: ProtocolCounters | None = None
    ) -> None:
        super().__init__(None, factory, SFTP_VERSION, False)
        self.counters = counters or ProtocolCounters()

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
        handler.counters = self.counters
        self._conn.create_task(handler.run(), reader.logger)
