"""The daemon: prepare the machine, reconcile it with the model, serve the API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import shutil
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import uvicorn
import uvloop
from sqlalchemy import select

from speicher import __version__, logs
from speicher.api.app import serve_app
from speicher.api.upgrade import UpgradingHttp
from speicher.config import Settings
from speicher.db import Pool, Share
from speicher.errors import SpeicherError
from speicher.metrics import counters
from speicher.metrics.asgi import Counted
from speicher.protection.restore import recover_rollbacks
from speicher.protocols.s3 import multipart, versions, workers
from speicher.protocols.s3.app import S3App
from speicher.protocols.sftp.models import SftpInfo
from speicher.replication import replicas
from speicher.services import Services
from speicher.system import accounts, ip
from speicher.system.run import CommandError
from speicher.tls import CertificateInfo, CertificateStore
from speicher.web.app import WebApp

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
    counters.reset(settings)  # the S3 workers' request counts of an earlier run
    # change counters every process of the daemon sees (S3's workers: s3/workers.py)
    services.db.share_generations(workers.generations_path(settings))
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


def remove_upload_leftovers(services: Services) -> None:
    """Remove the temp files of uploads a crash interrupted (ShareFS writes every upload to a
    hidden temp file beside its target). Runs in the background: a walk of a big share takes a
    while, and the temp files are invisible to every protocol meanwhile. Also what cut-off
    replication streams left in the replica folders."""
    with contextlib.suppress(OSError):
        for staging in replicas.clean_incoming(services.settings):
            log.info("replication: removed %s, a stream that was cut off", staging)
    try:
        services.backup_tasks.recover()
    except (OSError, SpeicherError) as exc:
        log.warning("removing what cut-off backups left failed: %s", exc)
    for share in services.shares.list():
        if share.state != "ready":
            continue
        try:
            removed = services.files.remove_leftovers(Path(share.path))
        except OSError as exc:
            log.warning("looking for interrupted uploads in share %s failed: %s", share.name, exc)
            continue
        if removed:
            services.events.record(
                "info",
                "files.leftovers_removed",
                share.name,
                f"removed {removed} temp file(s) of uploads interrupted in share {share.name}",
            )


def remove_abandoned_uploads(services: Services) -> None:
    """Remove S3 multipart uploads abandoned for ``s3_abandoned_upload_days`` (their parts
    take space in the share and count against its quota)."""
    days = services.settings.s3_abandoned_upload_days
    for share in services.shares.list():
        if share.state != "ready":
            continue
        uploads = services.files.internal_of(Path(share.path), *multipart.UPLOADS)
        if uploads is None:
            continue
        with uploads:
            removed = multipart.remove_abandoned(uploads, days * 86400)
        if removed:
            services.events.record(
                "info",
                "s3.uploads_removed",
                share.name,
                f"removed {removed} S3 multipart upload(s) abandoned for {days:g} days or more "
                f"in share {share.name}",
            )


_resealed: set[tuple[str, str]] = set()  # the S3 shares whose seals were checked since start


def expire_object_locks(services: Services) -> None:
    """Lift the immutable attribute of S3 object versions whose retention ended (unless a
    legal hold remains): at start, then every ``s3_lock_check_seconds``."""
    # the share rows alone: a share listing would ask btrfs for usage every few seconds
    with services.db.session() as session:
        rows = session.execute(
            select(Share.name, Pool.name)
            .join(Pool, Pool.id == Share.pool_id)
            .where(Share.s3_enabled, Share.state == "ready")
        ).all()
    for name, pool in rows:
        top = services.settings.mount_root / pool / name
        if (pool, name) not in _resealed:  # once per share and start: the machine is the truth
            try:
                versions.reseal(services.files, top)
                _resealed.add((pool, name))
            except Exception:
                log.exception("S3: could not seal the folders of locked objects in share %s", name)
        try:
            lifted = versions.expire(services.files, top)
        except Exception:  # one share's trouble must not keep the others' locks on
            log.exception("S3: could not look for ended retentions in share %s", name)
            continue
        if lifted:
            log.info("S3: retention ended for %d version(s) in share %s", lifted, name)


def every(
    chore: Callable[[Services], None], services: Services, stop: threading.Event, seconds: float
) -> None:
    """Run ``chore`` now and then every ``seconds`` until ``stop`` is set."""
    while True:
        try:
            chore(services)
        except Exception:
            log.exception("%s failed", chore.__qualname__)
        if stop.wait(seconds):
            return


def daily(chore: Callable[[Services], None], services: Services, stop: threading.Event) -> None:
    """Run ``chore`` now and then every day until ``stop`` is set."""
    while True:
        try:
            chore(services)
        except Exception:
            log.exception("%s failed", chore.__qualname__)
        if stop.wait(86400):
            return


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
            self.services.replication_tasks.run_due,
            self.services.backup_tasks.run_due,
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
    if family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # "::" means IPv4 too
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SpeicherError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
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


def _listen(
    settings: Settings,
) -> tuple[socket.socket, socket.socket | None, socket.socket | None]:
    """Bind the HTTPS port and, unless they are off, the plain HTTP port and S3's (before
    reconciling, so a port in use stops the start before anything is touched)."""
    https = _tcp_socket(settings.https_host, settings.https_port)
    bound = [https]
    try:
        http = _tcp_socket(settings.http_host, settings.http_port) if settings.http_port else None
        if http is not None:
            bound.append(http)
        s3 = _tcp_socket(settings.s3_host, settings.s3_port) if settings.s3_port else None
    except SpeicherError:
        for sock in bound:
            sock.close()
        raise
    return https, http, s3


def _s3_server(
    services: Services, sock: socket.socket | None, ssl_context: ssl.SSLContext
) -> tuple[list[tuple[_Server, list[socket.socket]]], workers.S3Workers | None]:
    """The S3 endpoint's server on ``sock`` (HTTPS with the daemon's certificate where
    ``s3_tls`` says so), or its worker processes on ``sock`` and the daemon's server on the
    control socket for what they relay; nothing when S3 is off."""
    if sock is None:
        return [], None
    settings = services.settings
    tls = settings.s3_tls
    host, port = sock.getsockname()[:2]
    scheme = "HTTPS" if tls else "HTTP"
    if settings.s3_workers:
        workers.control_path(settings).parent.mkdir(mode=0o700, exist_ok=True)
        control = _unix_socket(workers.control_path(settings))
        config = uvicorn.Config(
            S3App(services, trusted_relay=True),
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
        )
        pool = workers.S3Workers(settings, sock, settings.s3_workers)
        log.info("S3 listening on %s:%s (%s, %d worker processes)", host, port, scheme, pool.count)
        return [(_Server(config), [control])], pool
    config = uvicorn.Config(
        Counted(S3App(services), services.counters, "s3"),
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,  # the app says "Server: Speicher" itself
        ssl_context_factory=(lambda _config, _default: ssl_context) if tls else None,
    )
    log.info("S3 listening on %s:%s (%s)", host, port, scheme)
    return [(_Server(config), [sock])], None


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def listening_addresses(host: str, addresses: list[str]) -> list[str]:
    """The addresses a socket bound to ``host`` answers on: for a wildcard the host's own
    (those other machines can reach; loopback only if there are none)."""
    if host not in ("0.0.0.0", "::"):  # noqa: S104
        return [host]
    own = [a for a in addresses if host == "::" or ":" not in a]
    remote = [a for a in own if not ipaddress.ip_address(a).is_loopback]
    return remote or [a for a in own if ipaddress.ip_address(a).is_loopback] or ["127.0.0.1"]


def banner(
    settings: Settings,
    https_port: int,
    http_port: int | None,
    addresses: list[str],
    certificate: CertificateInfo,
    password: str | None,
) -> str:
    https_urls = [
        _url("https", a, https_port) for a in listening_addresses(settings.https_host, addresses)
    ]
    lines = [f"Speicher {__version__} is running."]
    lines += [f"  REST API:  {url}/api/v1  (docs: {url}/api/docs)" for url in https_urls]
    kind = "self-signed" if certificate.self_signed else certificate.issuer
    lines.append(f"  TLS:       SHA-256 {certificate.sha256} ({kind})")
    if http_port:
        where = listening_addresses(settings.http_host, addresses)
        local = all(ipaddress.ip_address(a).is_loopback for a in where)
        for address in where:
            note = "plain HTTP, this machine only" if local else "plain HTTP, unencrypted"
            lines.append(f"  REST API:  {_url('http', address, http_port)}/api/v1  ({note})")
    lines.append(f"  CLI:       speicher ... (as root, over {settings.socket_path})")
    if password:
        lines += [
            "",
            "  First start: created the user 'admin' with the password",
            f"      {password}",
            "  It is shown only this once.",
        ]
    return "\n".join(lines)


def sftp_banner(info: SftpInfo) -> str:
    """The banner's SFTP lines: the port and the host keys, to compare at a first login."""
    if not info.enabled:
        return ""
    lines = [f"\n  SFTP:      port {info.port}  (sftp -P {info.port} USER@HOST)"]
    lines += [f"  SSH key:   {k.fingerprint} ({k.algorithm})" for k in info.host_keys]
    return "\n".join(lines)


class _Server(uvicorn.Server):
    """One of the daemon's servers; :func:`_serve_all` handles the signals for all of them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Background(Protocol):
    """A server of the daemon's that is not uvicorn (SFTP): started in the event loop with
    the others, stopped after them."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def _serve_all(
    servers: list[tuple[_Server, list[socket.socket]]],
    others: Sequence[Background] = (),
    web: WebApp | None = None,
) -> None:
    """Run the servers in one event loop until SIGTERM or SIGINT (a second SIGINT cuts
    their graceful shutdown short), or until one of them ends. ``web``: its live streams end
    when the servers do (an open dashboard does not hold up the stop)."""
    loop = asyncio.get_running_loop()
    if web is not None:
        web.exiting = lambda: any(server.should_exit for server, _ in servers)
    for other in others:
        await other.start()

    def stop(sig: signal.Signals) -> None:
        for server, _ in servers:
            if server.should_exit and sig == signal.SIGINT:
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    tasks = [asyncio.create_task(server.serve(sockets=socks)) for server, socks in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)
    finally:
        for other in others:
            await other.stop()


def _start_chores(services: Services, stopping: threading.Event) -> None:
    """The threads that tidy up: once at start, daily, and every so often."""
    threading.Thread(
        target=remove_upload_leftovers, args=(services,), name="leftovers", daemon=True
    ).start()
    threading.Thread(
        target=daily,
        args=(remove_abandoned_uploads, services, stopping),
        name="s3-uploads",
        daemon=True,
    ).start()
    threading.Thread(
        target=every,
        args=(expire_object_locks, services, stopping, services.settings.s3_lock_check_seconds),
        name="s3-locks",
        daemon=True,
    ).start()


def _start_watching(services: Services) -> None:
    """The audit log before smbd and the S3 workers send to it; the ransomware detector
    listening to it (its canaries placed)."""
    services.audit.start(services.files.events)
    services.ransomware.start()


def _stop_watching(services: Services) -> None:
    """After the sources stopped: what they sent is written."""
    services.audit.stop()
    services.ransomware.stop()


def serve(settings: Settings) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    logs.setup(settings.log_level, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    with undone_if_first_start_fails(settings):
        services = prepare(settings)
        try:
            https_sock, http_sock, s3_sock = _listen(settings)
        except BaseException:
            services.db.close()
            raise
        services.sftp.bind()  # its host keys and port, or nothing when it is off
        certificates = CertificateStore(settings.tls_dir, services.events)
        certificates.ensure()
        ssl_context = certificates.context()
        reconcile(services)
        password = services.users.ensure_admin()
    services.events.record("info", "daemon.start", "speicher", f"Speicher {__version__} started")
    text = banner(
        settings,
        https_sock.getsockname()[1],
        http_sock.getsockname()[1] if http_sock else None,
        ip.addresses(),
        certificates.show(),
        password,
    )
    print(text + sftp_banner(services.sftp.info()), flush=True)
    unix = _unix_socket(settings.socket_path)
    _start_watching(services)
    services.smb.start()
    monitor = Monitor(services)
    monitor.start()
    _start_chores(services, monitor.stopping)
    app = serve_app(services, certificates)
    services.sftp.use_logins(app.app.state.logins)  # one throttle for the API, WebDAV and SFTP
    https = _Server(
        uvicorn.Config(
            app,
            http=UpgradingHttp,  # a replication stream takes its connection over (api/upgrade.py)
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # no proxy in front: X-Forwarded-For must not pick the address
            ssl_context_factory=lambda _config, _default: ssl_context,
        )
    )
    http = _Server(
        uvicorn.Config(
            app,
            http=UpgradingHttp,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,
        )
    )
    plain = [unix, http_sock] if http_sock else [unix]
    s3_servers, s3_workers = _s3_server(services, s3_sock, ssl_context)
    servers = [(https, [https_sock]), (http, plain), *s3_servers]
    if s3_workers is not None:
        s3_workers.start()
    try:
        # uvloop: a faster event loop for many clients at once (bench/api_concurrency.py)
        # what start-up made lives as long as the daemon: keep it out of the collector's way,
        # so a full collection does not stall every client (tens of ms with the whole heap)
        gc.freeze()
        uvloop.run(_serve_all(servers, [services.sftp], app.web))
    finally:
        # a second SIGTERM (an impatient service manager) must not cut the orderly stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        monitor.stopping.set()
        if s3_workers is not None:
            s3_workers.stop()
        services.smb.stop()
        _stop_watching(services)
        services.events.record("info", "daemon.stop", "speicher", "Speicher stopped")
        with contextlib.suppress(FileNotFoundError):
            settings.socket_path.unlink()
        services.db.close()
