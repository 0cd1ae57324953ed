"""Keeping one child process (smbd) running: start it, restart it when it dies, stop it."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from speicher.system.run import minimal_env

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
READ_SIZE = 1 << 20
READ_PAUSE = 0.02  # seconds; see Supervisor._read
BUSY_LINES = 1000  # lines a second
PIPE_SIZE = 1024 * 1024


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the daemon dies, even by kill -9."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Supervisor:
    def __init__(
        self,
        name: str,
        argv: Callable[[], list[str]],
        log_path: Path,
        port: Callable[[], int],
        on_restart: Callable[[int | None], None],
        leftovers: Callable[[], list[int]],
        lines: Callable[[bytes], bool] | None = None,
        read: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._argv = argv
        self._log_path = log_path
        self._port = port
        self._on_restart = on_restart
        self._leftovers = leftovers
        self._lines = lines  # each line of output first; False: it goes to the log file
        self._after_read = read  # called after the lines of each read
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    def start(self, wait: float = 15) -> None:
        """Start the process and a thread that restarts it; wait until its port answers.
        Leftovers of an earlier daemon (its smbd, RPC helpers) are ended first."""
        self._stopping.clear()
        self._kill_leftovers()
        spawned = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(spawned,), name=f"{self.name}-supervisor", daemon=True
        )
        self._thread.start()
        spawned.wait(10)
        self.wait_ready(wait)

    def _spawn(self) -> None:
        with self._lock:
            fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            log_file = os.fdopen(fd, "ab")
            out: int | BinaryIO = log_file
            if self._lines is not None:  # through a pipe that a thread of ours reads
                read_end, out = os.pipe2(os.O_CLOEXEC)
                with contextlib.suppress(OSError):  # room for a second of a busy smbd
                    fcntl.fcntl(out, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            try:
                self._proc = subprocess.Popen(
                    self._argv(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=minimal_env(),  # smbd expands %$(VAR): never the daemon's environment
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
                )
            except BaseException:
                if isinstance(out, int):
                    os.close(read_end)
                log_file.close()
                raise
            finally:
                if isinstance(out, int):
                    os.close(out)
            if isinstance(out, int):
                threading.Thread(
                    target=self._read, args=(read_end, log_file), name=f"{self.name}-output",
                    daemon=True,
                ).start()  # fmt: skip
            else:
                log_file.close()
            log.info("started %s (pid %d)", self.name, self._proc.pid)

    def _read(self, read_end: int, log_file: BinaryIO) -> None:
        """The child's output, line by line, to ``lines`` or else the log file, until every
        process that holds the pipe (smbd and the processes it forked) has ended.

        Read in chunks. While smbd writes more than BUSY_LINES lines a second, the reader
        pauses READ_PAUSE after a chunk that did not fill the buffer: a reader that wakes for
        every line makes every one of smbd's writes a wakeup and a thread switch (an audit
        line per open and close of a file), which cost small-file writes over SMB a tenth of
        their speed (bench/audit_overhead.py); after a pause the next read takes the lines of
        that time at once. Below that rate every line is read when it comes: the audit log
        looks at a file when its open's line comes, and a file renamed or deleted before
        then can no longer tell whether the open made it (audit/smb.py)."""
        assert self._lines is not None
        rest = b""
        second, count = time.monotonic(), 0  # lines read in the current second
        busy = False
        with log_file:
            try:
                while chunk := os.read(read_end, READ_SIZE):
                    *lines, rest = (rest + chunk).split(b"\n")
                    for line in lines:
                        self._line_or_log(line + b"\n", log_file)
                    if self._after_read is not None and lines:
                        self._call_after_read()
                    count += len(lines)
                    if time.monotonic() - second >= 1:
                        busy = count > BUSY_LINES
                        second, count = time.monotonic(), 0
                    if (busy or count > BUSY_LINES) and len(chunk) < READ_SIZE // 2:
                        time.sleep(READ_PAUSE)
                if rest:
                    self._line_or_log(rest, log_file)
            finally:
                os.close(read_end)

    def _call_after_read(self) -> None:
        assert self._after_read is not None
        try:
            self._after_read()
        except Exception:  # as with a line: never the end of reading
            log.exception("handling %s's output after a read failed", self.name)

    def _line_or_log(self, line: bytes, log_file: BinaryIO) -> None:
        assert self._lines is not None
        try:
            taken = self._lines(line)
        except Exception:  # a line that fails is logged, never the end of reading
            log.exception("a line of %s's output could not be handled", self.name)
            taken = False
        if not taken:
            log_file.write(line)
            log_file.flush()

    def wait_ready(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not self.running:
                time.sleep(0.1)
                continue
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self._port()), timeout=1),
            ):
                return True
            time.sleep(0.1)
        return False

    def _run(self, spawned: threading.Event) -> None:
        """Spawn and watch the process. The child's death signal is tied to the thread that
        forked it, so this one thread, living as long as the supervision, does every spawn."""
        self._spawn()
        spawned.set()
        delay = 1.0
        while True:
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            if self._stopping.is_set():
                return
            log.warning("%s exited with %s; restarting in %.0f s", self.name, code, delay)
            self._kill_leftovers()
            if self._stopping.wait(delay):
                return
            self._spawn()
            self._on_restart(code)
            delay = min(delay * 2, 30.0)

    def restart(self) -> None:
        """Stop and start again (drops connected clients; only for port or address changes)."""
        self.stop()
        self.start()

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._thread is not None:
            self._thread.join(timeout)
        self._kill_leftovers()

    def _kill_leftovers(self, timeout: float = 5) -> None:
        pids = self._leftovers()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.1)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
