"""S3 served by worker processes, so both cores (or all of them) serve S3.

One Python process runs Python on one core at a time. The daemon therefore starts
``s3_workers`` processes (``python -m speicher.protocols.s3.workers``) that all accept from
the S3 socket the daemon bound (the kernel hands each connection to one of them). Each
builds its own services on the same database and state directory and serves S3App; the
daemon itself serves S3 only on its control socket (``<state>/s3/control.sock``, root only),
for the requests a worker relays (``forward.py``: those that change shares).

- The caches of every process (grants, keys, bucket settings) follow the database's change
  counters, which all processes share (``db/generations.py``): a revoked grant or a deleted
  key counts in a worker from the next request.
- A worker gets its settings from the daemon (on its stdin, as JSON), a minimal
  environment, and the read end of a pipe whose write end only the daemon holds: when the
  daemon ends, killed or not, the worker sees the end of the pipe and stops.
- The daemon starts a worker again that ended on its own (at most once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn
import uvloop

from speicher import logs
from speicher.config import Settings

log = logging.getLogger(__name__)

GENERATIONS = "db.generations"  # in the state directory
GRACE = 10.0  # seconds a worker has to finish its requests when it is told to stop


def control_path(settings: Settings) -> Path:
    return settings.state_dir / "s3" / "control.sock"


def generations_path(settings: Settings) -> Path:
    return settings.state_dir / GENERATIONS


class S3Workers:
    """The daemon's side: start, watch and stop the worker processes."""

    def __init__(self, settings: Settings, sock: socket.socket, count: int) -> None:
        self.settings = settings
        self.sock = sock
        self.count = count
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.stopping = threading.Event()
        # the daemon holds the write end; every worker watches the read end
        self._alive_r, self._alive_w = os.pipe()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        for i in range(self.count):
            self.procs[i] = self._spawn(i)
        self._watcher = threading.Thread(target=self._watch, name="s3-workers", daemon=True)
        self._watcher.start()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        fds = (self.sock.fileno(), self._alive_r)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "speicher.protocols.s3.workers",
                *map(str, fds),
                str(index),
                str(self.settings.state_dir),  # whose worker it is, for ps
            ],
            stdin=subprocess.PIPE,
            pass_fds=fds,
            env=env,
            close_fds=True,
        )
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(self.settings.model_dump_json().encode())
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        log.info("S3 worker %d started (pid %d)", index, proc.pid)
        return proc

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self.stopping.is_set():
                    log.warning("S3 worker %d ended (%s); starting it again", i, proc.returncode)
                    self.procs[i] = self._spawn(i)

    def stop(self) -> None:
        self.stopping.set()
        running = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE + 2
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        os.close(self._alive_w)
        os.close(self._alive_r)


# -- the worker's side -----------------------------------------------------------------------------


def _watch_daemon(alive_fd: int) -> None:
    """Stop (gracefully, then at once) when the daemon's end of the pipe closes."""
    with contextlib.suppress(OSError):
        while os.read(alive_fd, 1):
            pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE)
    os._exit(1)


def main(argv: list[str]) -> int:
    sock_fd, alive_fd, index = int(argv[0]), int(argv[1]), int(argv[2])
    settings = Settings(**json.loads(sys.stdin.read()))
    logs.setup(settings.log_level, f"%(asctime)s %(levelname)s %(name)s[s3-{index}]: %(message)s")
    threading.Thread(target=_watch_daemon, args=(alive_fd,), name="daemon", daemon=True).start()
    from speicher.audit.service import INTAKE, WorkerSender  # noqa: PLC0415 - after the settings
    from speicher.metrics import counters  # noqa: PLC0415
    from speicher.metrics.asgi import Counted  # noqa: PLC0415
    from speicher.protocols.s3.app import S3App  # noqa: PLC0415
    from speicher.services import Services  # noqa: PLC0415
    from speicher.tls import CertificateStore  # noqa: PLC0415

    services = Services.build(settings)
    services.db.share_generations(generations_path(settings))
    if settings.audit_files:  # this worker's file events go to the daemon's audit log
        WorkerSender(settings.audit_dir / INTAKE).attach(services.files.events)
    # the daemon sums every worker's file at a scrape (metrics/counters.py)
    services.counters.share(counters.metrics_dir(settings) / f"s3-{index}")
    ssl_context = None
    if settings.s3_tls:
        ssl_context = CertificateStore(settings.tls_dir, services.events).context()
    config = uvicorn.Config(
        Counted(S3App(services, relay_to=control_path(settings)), services.counters, "s3"),
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        ssl_context_factory=(lambda _config, _default: ssl_context) if ssl_context else None,
    )
    sock = socket.socket(fileno=sock_fd)
    gc.freeze()
    try:
        uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        services.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
