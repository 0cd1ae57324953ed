"""The SFTP server: asyncssh on its own port in the daemon's event loop, SFTP only.

Logins (rule 2 of docs/architecture.md, as for the API):

- Password: the API's own check (``speicher.api.auth.PasswordLogins``, handed over by the
  daemon): ``UserService.authenticate`` (Argon2) with at most two checks at once for the API,
  WebDAV and SFTP together (an SFTP login waiting behind more than ``MAX_WAITING`` others is
  refused at once), and one :class:`~speicher.access.throttle.Throttle` per client address
  and user name for all three, so switching protocols buys no extra guesses. A locked key is
  refused without a check, each lockout is one ``auth.lockout`` event, and every refused
  password is answered only after ``FAILURE_DELAY`` seconds. Single failures are counted
  (``speicher sftp show``), not logged as events.
- Public key: the keys ``KeyService.authorized`` gives (none for a user who is unknown,
  disabled or without file access). Offering a key that is not accepted is how SSH clients
  try their keys, not a failed login, so keys are not throttled, and a user whose password
  login is locked by a stranger still gets in with a key (as API tokens do for the API).
- Unknown users, disabled users and users without file access are refused alike (the same
  answer after the same Argon2 work and delay).

No shell, no exec (so no legacy ``scp -O``), no pty, no port, agent or X11 forwarding: only
the ``sftp`` subsystem. A user who is disabled or deleted is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh
from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import String

from speicher import names
from speicher.access.keys import KeyService
from speicher.access.throttle import address_key, user_key
from speicher.access.users import UserService
from speicher.config import Settings
from speicher.db import Database
from speicher.errors import SpeicherError, Unauthorized
from speicher.events import EventService
from speicher.files import ShareFS
from speicher.hooks import USER_CUT, USER_DELETED, USER_STATE, Hooks
from speicher.metrics.counters import ProtocolCounters
from speicher.protocols.sftp import hostkeys
from speicher.protocols.sftp.channel import SftpOnly
from speicher.protocols.sftp.models import SftpHostKey, SftpInfo
from speicher.protocols.sftp.session import SftpSession

if TYPE_CHECKING:  # speicher.api imports the services, which hold this one
    from speicher.api.auth import PasswordLogins

log = logging.getLogger(__name__)

MAX_WAITING = 16  # logins queued behind the API's two Argon2 checks; more are refused at once
FAILURE_DELAY = 1.0  # seconds before a refused password is answered
INVALID_NAME = "(invalid name)"  # what a name no user can have is counted and logged as
MAX_PASSWORD = 1024  # the password rules' own limit: longer is never right
MAX_UNAUTHENTICATED = 64  # connections still logging in; more are closed at once
MAX_SESSIONS = 256  # SFTP sessions in all (each holds descriptors: see MAX_HANDLES)
MAX_SESSIONS_PER_CONNECTION = 8
LOGIN_TIMEOUT = 30
MAX_READ = 1024 * 1024  # bytes one read answers (OpenSSH asks 32 KiB, asyncssh up to 4 MiB)
WORKERS = 32  # mostly waiting: an upload's commit waits for two fsyncs
CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
]
WINDOW = 8 * 1024 * 1024  # bytes a client may send ahead (an upload's writes in flight)
MAX_PACKET = 128 * 1024  # bytes per SSH packet a client may send: fewer, larger packets


class _Login(asyncssh.SSHServer):
    """One connection's login."""

    def __init__(self, service: SftpService) -> None:
        self.service = service
        self.conn: asyncssh.SSHServerConnection | None = None
        self.address: str | None = None
        self.user: str | None = None  # the Speicher user name, once logged in

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        _without_cbc_padding(conn)
        peer = conn.get_extra_info("peername")
        self.address = peer[0] if peer else None
        self.service.connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.disconnected(self)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        user = await self.service.check_password(username, password, self.address)
        if user is None:
            return False
        self.user = user
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        user = await self.service.check_key(username, key)
        if user is None:
            return False
        self.user = user
        return True

    def auth_completed(self) -> None:
        self.service.logged_in(self)

    def session_requested(self) -> SftpOnly | bool:
        here = sum(1 for s in self.service._sessions if s.connection is self.conn)
        if here >= MAX_SESSIONS_PER_CONNECTION or len(self.service._sessions) >= MAX_SESSIONS:
            log.warning("SFTP: refused a session of %s from %s (too many)", self.user, self.address)
            return False
        return SftpOnly(self.service._session, self.service.counters)


def _possible_name(user: str) -> bool:
    """Whether ``user`` could be a Speicher user's name (the rule of account names)."""
    return names.account_name(names.normalize(user), max_length=64) is None


def _without_cbc_padding(conn: asyncssh.SSHServerConnection) -> None:
    """asyncssh puts an empty SSH_MSG_IGNORE before every packet it sends once encrypting:
    the countermeasure against the attacks on CBC's predictable IVs. No CBC cipher is offered
    here (``CIPHERS``), and the extra packet costs a third of the CPU a download takes, so
    this connection sends them no more (asyncssh looks the method up on the connection)."""
    send = conn.send_packet
    empty = String(b"")

    def send_packet(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if pkttype == MSG_IGNORE and args == (empty,):
            return
        send(pkttype, *args, **kwargs)

    conn.send_packet = send_packet  # type: ignore[method-assign]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SpeicherError(f"SFTP cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


class SftpService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        users: UserService,
        files: ShareFS,
        hooks: Hooks,
        keys: KeyService,
        counters: ProtocolCounters | None = None,
    ) -> None:
        self.settings = settings
        self.counters = counters or ProtocolCounters()  # requests, for /metrics
        self.db = db
        self.events = events
        self.users = users
        self.files = files
        self.keys = keys
        self.logins: PasswordLogins  # the API's, handed over by the daemon (use_logins)
        self.executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="sftp")
        self.max_read = MAX_READ
        self.names: dict[tuple[int, bool], str] = {}  # uid/gid -> name, for listings
        self.failed_logins = 0
        self.lockouts = 0
        self._sock: socket.socket | None = None
        self._host_keys: list[asyncssh.SSHKey] = []
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._logins: set[_Login] = set()
        self._sessions: set[SftpSession] = set()
        hooks.subscribe(USER_STATE, self._user_state)
        hooks.subscribe(USER_DELETED, self._end_sessions)
        hooks.subscribe(USER_CUT, self._end_sessions)

    @property
    def folder(self) -> Path:
        return self.settings.state_dir / "ssh"

    # -- starting and stopping -----------------------------------------------------------

    def bind(self) -> None:
        """Make the host keys and take the port (before the daemon touches anything, so a
        port in use stops the start); nothing when SFTP is off."""
        if not self.settings.sftp_port:
            return
        self._host_keys = hostkeys.ensure(self.folder)
        # every open file of every session is a descriptor: allow what the system allows
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < wanted:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 1 << 20), hard))
        self._sock = _bind(self.settings.sftp_host, self.settings.sftp_port)

    @property
    def port(self) -> int | None:
        return self._sock.getsockname()[1] if self._sock is not None else None

    def use_logins(self, logins: PasswordLogins) -> None:
        """Check passwords as the API does, with its throttle (see check_password)."""
        self.logins = logins

    async def start(self) -> None:
        if self._sock is None:
            return
        self._loop = asyncio.get_running_loop()
        # asyncssh logs every connection and login at INFO: ours says what matters
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        self._acceptor = await asyncssh.listen(
            sock=self._sock,
            config=None,
            server_factory=lambda: _Login(self),
            server_host_keys=self._host_keys,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
            kbdint_auth=False,
            gss_kex=False,
            gss_auth=False,
            login_timeout=LOGIN_TIMEOUT,
            keepalive_interval=60,
            keepalive_count_max=3,
            server_version="Speicher",
            # AES runs in OpenSSL with the CPU's AES instructions; asyncssh computes
            # chacha20-poly1305 in pieces from Python, at half the speed. Not offering it makes
            # OpenSSH's client, which prefers it, take AES (GCM, or CTR with an ETM MAC).
            encryption_algs=CIPHERS,
            window=WINDOW,
            max_pktsize=MAX_PACKET,
        )
        log.info("SFTP listening on %s:%s", self.settings.sftp_host, self.port)

    async def stop(self) -> None:
        """Stop listening and end every connection (open uploads are thrown away)."""
        if self._acceptor is None:
            return
        self._acceptor.close()
        for login in list(self._logins):
            if login.conn is not None:
                login.conn.close()
        deadline = time.monotonic() + 5
        while (self._logins or self._sessions) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self._acceptor = None
        self._sock = None
        self.executor.shutdown(wait=True)

    # -- connections ---------------------------------------------------------------------

    def connected(self, login: _Login) -> None:
        waiting = sum(1 for x in self._logins if x.user is None)
        self._logins.add(login)
        if waiting >= MAX_UNAUTHENTICATED and login.conn is not None:
            log.warning("SFTP: too many connections logging in; closing one from %s", login.address)
            login.conn.close()

    def disconnected(self, login: _Login) -> None:
        self._logins.discard(login)

    def logged_in(self, login: _Login) -> None:
        log.info("SFTP login of %s from %s", login.user, login.address)

    def _session(self, chan: asyncssh.SSHServerChannel[bytes]) -> SftpSession:
        conn = chan.get_connection()
        user = next((x.user for x in self._logins if x.conn is conn), None)
        if user is None:  # cannot be: asyncssh opens sessions only after the login
            raise asyncssh.DisconnectError(asyncssh.DISC_BY_APPLICATION, "not logged in")
        session = SftpSession(chan, self, user)
        self._sessions.add(session)
        return session

    def session_ended(self, session: SftpSession) -> None:
        self._sessions.discard(session)

    def _disconnect(self, user: str) -> None:
        for login in list(self._logins):
            if login.user == user and login.conn is not None:
                log.info("SFTP: ending the connection of %s from %s", user, login.address)
                login.conn.close()

    def _user_state(self, name: str, enabled: bool, **_: Any) -> None:
        if not enabled:
            self._disconnect_soon(name)

    def _end_sessions(self, name: str, **_: Any) -> None:
        self._disconnect_soon(name)

    def _disconnect_soon(self, user: str) -> None:
        """From the API's thread: end ``user``'s connections on the event loop."""
        if self._loop is not None and self._acceptor is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just stopped
                self._loop.call_soon_threadsafe(self._disconnect, user)

    # -- logins --------------------------------------------------------------------------

    async def check_password(self, user: str, password: str, address: str | None) -> str | None:
        """The Speicher user name if ``password`` lets ``user`` in over SFTP, else None. The
        check is the API's (:class:`PasswordLogins`: its throttle, its Argon2 cap), so
        guesses over SFTP, the API and WebDAV count together."""
        if len(password) > MAX_PASSWORD:
            password = ""  # never right, and still the same work and answer
        if not _possible_name(user):
            # no user has it: the same work and answer, and the name a client sent (which may
            # hold anything, line breaks too) never reaches the throttle's events or the log
            user = INVALID_NAME
        from speicher.api.auth import TooManyRequests  # noqa: PLC0415 - see TYPE_CHECKING

        throttle = self.logins.throttle
        unlocked = [k for k in (address_key(address), user_key(user)) if not throttle.locked(k)]
        try:
            info = await self.logins.login(
                user, password, address, queue=MAX_WAITING, protocol="sftp"
            )
        except TooManyRequests as exc:  # locked out, or too many checks waiting
            self.failed_logins += 1
            log.debug("SFTP: password login of %s from %s refused: %s", user, address, exc)
            await asyncio.sleep(FAILURE_DELAY)
            return None
        except Unauthorized:
            self.failed_logins += 1
            # keys (address, user name) this failure locked
            self.lockouts += sum(1 for k in unlocked if throttle.locked(k))
            await asyncio.sleep(FAILURE_DELAY)
            return None
        if not (info.enabled and info.file_access):  # the same answer as a wrong password
            self.failed_logins += 1
            await asyncio.sleep(FAILURE_DELAY)
            return None
        return info.name

    async def check_key(self, user: str, key: asyncssh.SSHKey) -> str | None:
        """The Speicher user name if ``key`` is one of ``user``'s, else None."""
        if not _possible_name(user):
            return None
        name = names.normalize(user)
        loop = asyncio.get_running_loop()
        lines = await loop.run_in_executor(self.executor, self.keys.authorized, name)
        wanted = key.public_data
        for line in lines:
            try:
                if asyncssh.import_public_key(line).public_data == wanted:
                    return name
            except (asyncssh.KeyImportError, ValueError):
                log.warning("SFTP: a stored key of %s cannot be read", name)
        return None

    # -- what the API shows --------------------------------------------------------------

    def info(self) -> SftpInfo:
        keys = hostkeys.describe(self._host_keys) if self._host_keys else hostkeys.read(self.folder)
        return SftpInfo(
            enabled=bool(self.settings.sftp_port),
            running=self._acceptor is not None,
            host=self.settings.sftp_host,
            port=self.port or self.settings.sftp_port,
            host_keys=[SftpHostKey(algorithm=k.algorithm, fingerprint=k.fingerprint) for k in keys],
            connections=len(self._logins),
            sessions=len(self._sessions),
            failed_logins=self.failed_logins,
            lockouts=self.lockouts,
        )
