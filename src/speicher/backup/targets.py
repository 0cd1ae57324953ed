"""Backup targets: restic repositories on a local path, an S3 bucket or an SFTP server.

Adding a target makes its repository (``restic init``) with a generated password, shown once,
or opens an existing one with the password the admin gives (a box rebuilt after a disaster
reads its old backups that way). The password and any S3 secret are kept sealed in the
database; restic gets them in its environment only. An SFTP server's host key is pinned when
the target is added, and the box logs in with its own key (:meth:`BackupTargets.public_key`),
which the admin installs on the server first.
"""

from __future__ import annotations

import builtins
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from speicher.access.s3keys import Sealer
from speicher.backup import restic
from speicher.backup.restic import NoRepository, Repository
from speicher.config import Settings
from speicher.db import BackupTarget, BackupTask, Database
from speicher.errors import Conflict, InvalidInput, NotFound, OperationFailed
from speicher.events import EventService
from speicher.system.run import minimal_env
from speicher.validation import Name, Request

CALL_SECONDS = 120.0  # init / open of a repository while the admin waits

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./@+-]+$")  # what may stand unquoted in sftp.command


class BackupTargetCreate(Request):
    multiline = frozenset({"ca_certificate"})

    name: Name = Field(max_length=64, description="The target's name here.")
    kind: Literal["local", "s3", "sftp"] = Field(description="Where the repository is.")
    path: str | None = Field(
        None,
        max_length=1024,
        description="local: the repository's folder (its parent must exist); sftp: the "
        "folder on the server.",
    )
    url: str | None = Field(
        None,
        max_length=2048,
        description="s3: `https://host[:port]/bucket[/prefix]` of any S3 endpoint.",
    )
    access_key: str | None = Field(None, max_length=255, description="s3: the access key.")
    secret_key: str | None = Field(None, max_length=255, description="s3: its secret.")
    ca_certificate: str | None = Field(
        None, max_length=65536, description="s3 over https: a PEM certificate to trust."
    )
    host: str | None = Field(None, max_length=253, description="sftp: the server.")
    port: int = Field(22, ge=1, le=65535, description="sftp: the server's SSH port.")
    user: str | None = Field(None, max_length=64, description="sftp: the login.")
    password: str | None = Field(
        None,
        max_length=1024,
        description="The password of an existing repository there; omit it to make a new "
        "repository with a generated one.",
    )


class BackupTargetInfo(BaseModel):
    name: str
    kind: str
    location: str
    host_key: str = Field("", description="sftp: the server's key, pinned when added.")
    tasks: int = Field(0, description="Backup tasks that use it.")


class BackupTargetCreated(BackupTargetInfo):
    password: str | None = Field(
        None,
        description="The new repository's password, shown this once: without it the backups "
        "cannot be read, by anybody.",
    )


def _info(target: BackupTarget, tasks: int = 0) -> BackupTargetInfo:
    key = target.host_key.split()
    return BackupTargetInfo(
        name=target.name,
        kind=target.kind,
        location=target.location,
        host_key=" ".join(key[1:3]) if len(key) >= 3 else "",
        tasks=tasks,
    )


class BackupTargets:
    def __init__(
        self, settings: Settings, db: Database, events: EventService, sealer: Sealer
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.sealer = sealer
        self.home = settings.state_dir / "backup"

    # -- files of ours -------------------------------------------------------------------------

    def _files(self, name: str) -> Path:
        return self.home / "targets" / name

    def cache(self) -> Path:
        return restic.ensure_dir(self.home / "cache")

    def _key_path(self) -> Path:
        return self.home / "ssh" / "id_ed25519"

    def public_key(self) -> str:
        """The key this box logs in to SFTP servers with (made on first use)."""
        key = self._key_path()
        if not key.exists():
            restic.ensure_dir(key.parent)
            tmp = key.with_name("id_ed25519.new")
            for leftover in (tmp, tmp.with_suffix(".new.pub")):
                leftover.unlink(missing_ok=True)
            _tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "speicher-backup",
                   "-f", str(tmp)], "making the backup SSH key")  # fmt: skip
            os.replace(tmp.with_suffix(".new.pub"), key.with_suffix(".pub"))
            os.replace(tmp, key)
        return key.with_suffix(".pub").read_text().strip()

    # -- the model -----------------------------------------------------------------------------

    def add(self, req: BackupTargetCreate) -> BackupTargetCreated:
        with self.db.session() as s:
            if s.scalars(select(BackupTarget).where(BackupTarget.name == req.name)).first():
                raise Conflict(f"a backup target named '{req.name}' exists", "name")
        row = self._checked(req)
        files = self._files(req.name)
        shutil.rmtree(files, ignore_errors=True)  # of an earlier target of that name
        try:
            made = self._open_or_init(row, req.password)
            try:
                with self.db.session() as s:
                    s.add(row)
            except IntegrityError:
                raise Conflict(f"a backup target named '{req.name}' exists", "name") from None
        except BaseException:
            shutil.rmtree(files, ignore_errors=True)
            raise
        self.events.record(
            "info",
            "backup.target_added",
            req.name,
            f"backup target {req.name} added: {row.kind} {row.location}"
            + (" (a new repository)" if made else " (an existing repository)"),
        )
        created = BackupTargetCreated(**_info(row).model_dump())
        if made and req.password is None:
            created.password = self._unseal(row.password_sealed)
        return created

    def _checked(self, req: BackupTargetCreate) -> BackupTarget:
        """The target's row as it will be stored, after every check that needs no server."""
        if req.password is not None and not req.password:
            raise InvalidInput(field="password", reason="must not be empty")
        password = req.password or secrets.token_urlsafe(24)
        row = BackupTarget(
            name=req.name,
            kind=req.kind,
            password_sealed=self.sealer.seal(password),
            access_key="",
            secret_sealed="",
            ca_certificate="",
            host_key="",
        )
        if req.kind == "local":
            row.location = self._local_path(req.path)
        elif req.kind == "s3":
            row.location = _s3_url(req.url)
            if not req.access_key or not req.secret_key:
                raise InvalidInput(field="secret_key", reason="an S3 target needs both keys")
            row.access_key = req.access_key
            row.secret_sealed = self.sealer.seal(req.secret_key)
            if req.ca_certificate:
                try:
                    x509.load_pem_x509_certificates(req.ca_certificate.encode())
                except ValueError:
                    raise InvalidInput(
                        field="ca_certificate", reason="is not a PEM certificate"
                    ) from None
                row.ca_certificate = req.ca_certificate
        else:
            host, user, path = _sftp_parts(req.host, req.user, req.path)
            shown = f"[{host}]" if ":" in host else host
            row.location = f"sftp://{user}@{shown}:{req.port}{path}"
            self.public_key()
            row.host_key = _scan(host, req.port)
        return row

    def _local_path(self, path: str | None) -> str:
        if not path or not path.startswith("/"):
            raise InvalidInput(
                field="path", reason="give the repository's folder as /absolute/path"
            )
        if "\x00" in path:
            raise InvalidInput(field="path", reason="must not contain NUL characters")
        folder = Path(os.path.normpath(path))
        for inside, what in (
            (self.settings.mount_root, "Speicher's pools"),
            (self.settings.state_dir, "Speicher's state"),
        ):
            if folder == inside or folder.is_relative_to(inside) or inside.is_relative_to(folder):
                raise InvalidInput(
                    field="path", reason=f"must not be in or above {what} ({inside})"
                )
        if folder == Path("/") or not folder.parent.is_dir():
            raise InvalidInput(
                field="path",
                reason=f"the folder {folder.parent} does not exist (is the disk mounted?)",
            )
        return str(folder)

    def _open_or_init(self, row: BackupTarget, password: str | None) -> bool:
        """Open the repository with the given password, or make it; True if made."""
        repo = self.repository_of(row)
        what = f"backup target {row.name}"
        if password is not None:
            try:
                restic.run(repo, ["cat", "config"], what, timeout=CALL_SECONDS)
                return False
            except NoRepository:
                pass
        restic.run(repo, ["init"], what, timeout=CALL_SECONDS)
        return True

    def list(self) -> builtins.list[BackupTargetInfo]:
        with self.db.session() as s:
            counts = dict(
                s.execute(
                    select(BackupTask.target_id, func.count()).group_by(BackupTask.target_id)
                ).all()
            )
            rows = s.scalars(select(BackupTarget).order_by(BackupTarget.name)).all()
            return [_info(t, counts.get(t.id, 0)) for t in rows]

    def get(self, name: str) -> BackupTargetInfo:
        for target in self.list():
            if target.name == name:
                return target
        raise NotFound(f"no backup target named '{name}'")

    def delete(self, name: str) -> None:
        """Forget the target (its repository and backups stay where they are)."""
        with self.db.session() as s:
            target = s.scalars(select(BackupTarget).where(BackupTarget.name == name)).first()
            if target is None:
                raise NotFound(f"no backup target named '{name}'")
            used = s.scalars(select(BackupTask.id).where(BackupTask.target_id == target.id)).all()
            if used:
                ids = ", ".join(str(i) for i in used)
                raise Conflict(f"backup target {name} is used by task(s) {ids}; delete them first")
            s.delete(target)
        shutil.rmtree(self._files(name), ignore_errors=True)
        self.events.record("info", "backup.target_deleted", name, f"backup target {name} deleted")

    def _unseal(self, sealed: str) -> str:
        secret = self.sealer.open(sealed)
        if secret is None:
            raise OperationFailed(
                "a backup target's secrets cannot be unsealed (seal.key changed?)"
            )
        return secret

    # -- restic's view of it -------------------------------------------------------------------

    def repository(self, name: str) -> Repository:
        with self.db.session() as s:
            target = s.scalars(select(BackupTarget).where(BackupTarget.name == name)).first()
            if target is None:
                raise NotFound(f"no backup target named '{name}'")
            s.expunge(target)
        return self.repository_of(target)

    def repository_of(self, target: BackupTarget) -> Repository:
        """How restic opens the target; writes the files it needs (a CA, known_hosts)."""
        password = self._unseal(target.password_sealed)
        cache = self.cache()
        if target.kind == "local":
            return Repository(url=target.location, password=password, cache=cache)
        files = restic.ensure_dir(self._files(target.name))
        if target.kind == "s3":
            parts = urlsplit(target.location)
            options: tuple[str, ...] = ()
            if target.ca_certificate:
                ca = files / "ca.pem"
                _write_private(ca, target.ca_certificate)
                options = ("--cacert", str(ca))
            return Repository(
                url=f"s3:{parts.scheme}://{parts.netloc}{parts.path}",
                password=password,
                env={
                    "AWS_ACCESS_KEY_ID": target.access_key,
                    "AWS_SECRET_ACCESS_KEY": self._unseal(target.secret_sealed),
                },
                options=options,
                cache=cache,
            )
        parts = urlsplit(target.location)
        host, port, user = parts.hostname or "", parts.port or 22, parts.username or ""
        path = parts.path
        known = files / "known_hosts"
        _write_private(known, target.host_key + "\n")
        key = self._key_path()
        for item in (str(key), str(known)):
            if not _SAFE_PATH.match(item):
                raise OperationFailed(f"the state folder path {item} cannot be given to ssh")
        _sftp_parts(host, user, path)  # the stored values are checked again before use
        command = (
            f"ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known} "
            f"-o ServerAliveInterval=30 -p {port} -l {user} {host} -s sftp"
        )
        shown = f"[{host}]" if ":" in host else host
        return Repository(
            url=f"sftp:{user}@{shown}:{path}",
            password=password,
            options=("-o", f"sftp.command={command}"),
            cache=cache,
        )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _s3_url(url: str | None) -> str:
    if not url:
        raise InvalidInput(field="url", reason="an S3 target needs https://host/bucket")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(field="url", reason="must be http(s)://host[:port]/bucket[/prefix]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(field="url", reason="must hold no query, fragment or login")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise InvalidInput(field="url", reason="has a port that is not a number") from None
    path = [p for p in parts.path.split("/") if p]
    if not path or not _BUCKET.match(path[0]):
        raise InvalidInput(field="url", reason="must name a bucket: http(s)://host/bucket")
    if any(p in (".", "..") or not _SAFE_PATH.match(p) for p in path):
        raise InvalidInput(field="url", reason="the prefix may hold letters, digits and ._-@+ only")
    return f"{parts.scheme}://{parts.netloc}/{'/'.join(path)}"


def _sftp_parts(host: str | None, user: str | None, path: str | None) -> tuple[str, str, str]:
    if not host:
        raise InvalidInput(field="host", reason="an SFTP target needs the server")
    try:
        host = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        if not _HOST.match(host):
            raise InvalidInput(field="host", reason="is not a host name or address") from None
    if not user or not _USER.match(user):
        raise InvalidInput(field="user", reason="give the login: letters, digits, ._- only")
    if (
        not path
        or not path.startswith("/")
        or not _SAFE_PATH.match(path)
        or any(p == ".." for p in path.split("/"))
    ):
        raise InvalidInput(
            field="path",
            reason="give the folder on the server as /absolute/path: letters, digits, ._-@+/",
        )
    return host, user, path


def _tool(argv: builtins.list[str], what: str, timeout: float = 30) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=minimal_env(), timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OperationFailed(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        raise OperationFailed(f"{what} failed: {done.stderr.strip()[-300:]}")
    return done.stdout


def _scan(host: str, port: int) -> str:
    """The server's host keys (known_hosts lines), to pin."""
    try:
        found = _tool(
            ["ssh-keyscan", "-T", "10", "-p", str(port), "-t", "ed25519,ecdsa,rsa", "--", host],
            f"reading the host key of {host}",
        )
    except OperationFailed:
        found = ""
    lines = [line for line in found.splitlines() if line and not line.startswith("#")]
    if not lines:
        raise restic.Unreachable(f"the SSH server {host} port {port} did not answer")
    return "\n".join(lines)
