"""The daemon: prepare the machine, reconcile it with the model, serve the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from speicher import __version__
from speicher.api.app import create_app
from speicher.config import Settings
from speicher.errors import SpeicherError
from speicher.protection.restore import recover_rollbacks
from speicher.services import Services
from speicher.system import accounts
from speicher.system.run import CommandError

log = logging.getLogger("speicher.daemon")


def prepare(settings: Settings) -> Services:
    """Create directories, migrate the database and build the services."""
    # 0711: users' processes (Samba's dfree helper) may reach state_dir/public, nothing else
    for path, mode in ((settings.state_dir, 0o711), (settings.disks_dir, 0o700)):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    settings.mount_root.mkdir(parents=True, exist_ok=True)
    if settings.db_url.startswith("sqlite:///"):
        db_file = Path(settings.db_url.removeprefix("sqlite:///"))
        os.close(os.open(db_file, os.O_CREAT | os.O_WRONLY, 0o600))  # WAL files copy its mode
        os.chmod(db_file, 0o600)
    services = Services.build(settings)
    services.db.migrate()
    return services


def reconcile(services: Services) -> None:
    """Bring the machine in line with the model after a start, a crash or a reboot."""
    interrupted = services.jobs.fail_interrupted()
    if interrupted:
        log.warning("%d job(s) were interrupted by the last stop", interrupted)
    services.users.ensure_primary_group()
    services.users.ensure_accounts()
    services.groups.ensure_groups()
    services.disks.attach_all()
    services.pools.mount_all()
    services.shares.recover()
    recover_rollbacks(services.restore)
    services.shares.check_all()
    services.smb.prepare()
    services.users.recover()
    services.groups.recover()


class Monitor(threading.Thread):
    """Checks pool health every ``monitor_interval`` seconds."""

    def __init__(self, services: Services) -> None:
        super().__init__(name="monitor", daemon=True)
        self.services = services
        self.stopping = threading.Event()

    def run(self) -> None:
        chores = (
            self.services.pools.check_all,
            self.services.health.collect,
            self.services.smb.update_dfree,
            self.services.smb.purge_recycle,
            self.services.policies.run_due,
            self.services.scrubs.run_due,
            lambda: self.services.alerts.check_capacity(self.services.pools.list()),
        )
        while not self.stopping.wait(self.services.settings.monitor_interval):
            for chore in chores:
                try:
                    chore()
                except Exception:
                    log.exception("%s failed", chore.__qualname__)


def _unix_socket(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # root only, from the moment it exists
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def undone_if_first_start_fails(settings: Settings) -> Iterator[None]:
    """A first start that fails leaves nothing half-made: the state directory, the mount root
    and the primary Unix group it created are removed again, so the next try starts clean.
    (A later start that fails keeps everything: then there is data.)"""
    made = [p for p in (settings.state_dir, settings.mount_root) if not p.exists()]
    first = not (settings.state_dir / "speicher.db").exists()
    had_group = accounts.group_exists(settings.primary_group)
    try:
        yield
    except BaseException:
        if first:
            log.error("the first start failed; removing what it made")
            if not had_group and accounts.group_exists(settings.primary_group):
                with contextlib.suppress(CommandError):
                    accounts.groupdel(settings.primary_group)
            for path in made:
                if not any(os.path.ismount(m) for m in _mounts_below(path)):
                    shutil.rmtree(path, ignore_errors=True)
        raise


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with contextlib.suppress(OSError), open("/proc/self/mounts") as fh:
        return [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
    return []


def serve(settings: Settings) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with undone_if_first_start_fails(settings):
        services = prepare(settings)
        try:
            tcp = _tcp_socket(settings.api_host, settings.api_port)
        except OSError as exc:
            services.db.close()
            raise SpeicherError(
                f"cannot listen on {settings.api_host}:{settings.api_port}: {exc.strerror}"
            ) from None
        reconcile(services)
        password = services.users.ensure_admin()
    services.events.record("info", "daemon.start", "speicher", f"Speicher {__version__} started")
    host = "localhost" if settings.api_host in ("0.0.0.0", "::") else settings.api_host  # noqa: S104
    port = tcp.getsockname()[1]
    banner = [
        f"Speicher {__version__} is running.",
        f"  REST API:  http://{host}:{port}/api/v1  (docs: http://{host}:{port}/api/docs)",
        f"  CLI:       speicher ... (as root, over {settings.socket_path})",
    ]
    if password:
        banner += [
            "",
            "  First start: created the user 'admin' with the password",
            f"      {password}",
            "  It is shown only this once.",
        ]
    print("\n".join(banner), flush=True)
    unix = _unix_socket(settings.socket_path)
    services.smb.start()
    monitor = Monitor(services)
    monitor.start()
    app = create_app(services)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal after a graceful shutdown; make SIGTERM end us cleanly too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(server.serve(sockets=[tcp, unix]))
    finally:
        # a second SIGTERM (an impatient service manager) must not cut the orderly stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        monitor.stopping.set()
        services.smb.stop()
        services.events.record("info", "daemon.stop", "speicher", "Speicher stopped")
        with contextlib.suppress(FileNotFoundError):
            settings.socket_path.unlink()
        services.db.close()
