"""Pairing two Speicher boxes for replication (docs/replication.md).

On the target, :meth:`Pairings.accept` makes a one-time code: a random secret and the first
20 hex digits of the SHA-256 of the target's TLS certificate. On the source,
:meth:`Targets.add` connects to the target's API port, checks that the certificate it is
shown has that fingerprint (so the code pins it: no CA is needed and a man in the middle is
refused), and sends the secret to ``POST /replication/v1/pair``. The target answers with a
credential that can only receive streams into ``<pool>/.replicas/<pairing>/``; the source
keeps it sealed with the certificate's whole fingerprint. Secrets are random, so a SHA-256
digest is all the target keeps of them (as of API tokens); a code is good for one pairing and
an hour.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from speicher import names
from speicher.access.s3keys import Sealer
from speicher.db import Database, Pool, ReplicationPairing, ReplicationTarget
from speicher.db.models import utcnow
from speicher.errors import Conflict, InvalidInput, NotFound, SpeicherError, Unauthorized
from speicher.events import EventService
from speicher.tls import fingerprint
from speicher.validation import Name, Request

CODE_LIFETIME = dt.timedelta(hours=1)
PIN_DIGITS = 20  # hex digits of the certificate's SHA-256 in a code: 80 bits
CREDENTIAL_PREFIX = "spr_"
PEER_PREFIX = "/replication/v1"
TIMEOUT = 30.0


class Unreachable(SpeicherError):
    """The other box did not answer, or answered what a Speicher would not."""

    status = 502
    exit_code = 1
    title = "Other box unreachable"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _plain(pin: str) -> str:
    return pin.replace(":", "").upper()


def _check_name(name: str, field: str = "name") -> None:
    if reason := names.pool_name(name):
        raise InvalidInput(field=field, reason=reason.replace("pool", "pairing"))


# -- the target: pairings ------------------------------------------------------------------


class PairingCreate(Request):
    name: Name = Field(
        max_length=64, description="A name for the source box, e.g. `office-a` (as pools)."
    )
    pool: Name | None = Field(
        None, max_length=64, description="The pool replicas go to; the only pool if omitted."
    )


class PairingCreated(BaseModel):
    name: str
    pool: str
    code: str = Field(description="Give this to `replication target add` on the source; once.")
    expires_at: dt.datetime


class PairingInfo(BaseModel):
    name: str
    pool: str
    state: str = Field(description="`waiting` for the source, `paired`, or `expired`.")
    source: str = Field(description="What the source called itself when it paired.")
    keep_last: int = Field(description="Replicas of each share kept here (0: all).")
    created_at: dt.datetime
    paired_at: dt.datetime | None
    expires_at: dt.datetime


class PairRequest(Request):
    secret: str = Field(max_length=64)
    source: str = Field("", max_length=255)


class PairAnswer(BaseModel):
    name: str = Field(description="The pairing's name on the target.")
    credential: str


class Peer(BaseModel):
    """Who sent a replication request: a pairing, the pool its replicas go to, and how many
    of each share's replicas this box keeps for it (0: all)."""

    name: str
    pool: str
    keep_last: int = 0


class PairingUpdate(Request):
    keep_last: int | None = Field(
        None,
        ge=0,
        le=100_000,
        description="Replicas of each share kept here, newest first (0: all); locked ones "
        "stay until their lock ends. Only this box decides it.",
    )


class Pairings:
    def __init__(self, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events

    def accept(self, req: PairingCreate, certificate_sha256: str) -> PairingCreated:
        _check_name(req.name)
        secret = base64.b32encode(os.urandom(15)).decode("ascii")
        code = f"{secret}-{_plain(certificate_sha256)[:PIN_DIGITS]}"
        expires = utcnow() + CODE_LIFETIME
        with self.db.session() as s:
            if req.pool is None:
                pools = s.scalars(select(Pool).where(Pool.state == "ready")).all()
                if len(pools) != 1:
                    raise InvalidInput(
                        field="pool",
                        reason=f"name the pool replicas go to (this box has {len(pools)} pools)",
                    )
                pool = pools[0]
            else:
                found = s.scalars(select(Pool).where(Pool.name == req.pool)).first()
                if found is None or found.state != "ready":
                    raise NotFound(f"no pool named '{req.pool}' that is ready")
                pool = found
            if s.scalars(
                select(ReplicationPairing).where(ReplicationPairing.name == req.name)
            ).first():
                raise Conflict(f"a pairing named '{req.name}' exists", "name")
            s.add(
                ReplicationPairing(
                    name=req.name, pool_id=pool.id, code_digest=_digest(secret), expires_at=expires
                )
            )
            pool_name = pool.name
        self.events.record(
            "info",
            "replication.pairing_created",
            req.name,
            f"pairing {req.name} waits for its source (replicas into pool {pool_name})",
        )
        return PairingCreated(name=req.name, pool=pool_name, code=code, expires_at=expires)

    def pair(self, req: PairRequest) -> PairAnswer:
        """A source's first request: the code's secret for a credential."""
        digest = _digest(req.secret.strip().upper())
        credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(30)
        with self.db.session() as s:
            row = s.scalars(
                select(ReplicationPairing).where(ReplicationPairing.code_digest == digest)
            ).first()
            if row is None or row.paired_at is not None or row.expires_at < utcnow():
                raise Unauthorized("the pairing code is not valid, used already or expired")
            row.code_digest = ""
            row.credential_digest = _digest(credential)
            row.paired_at = utcnow()
            row.source = req.source
            name = row.name
        self.events.record(
            "info", "replication.paired", name, f"pairing {name} paired with {req.source!r}"
        )
        return PairAnswer(name=name, credential=credential)

    def peer(self, credential: str) -> Peer | None:
        """The pairing whose credential this is, or None."""
        if not credential.startswith(CREDENTIAL_PREFIX):
            return None
        with self.db.session() as s:
            found = s.execute(
                select(ReplicationPairing.name, Pool.name, ReplicationPairing.keep_last)
                .join(Pool, Pool.id == ReplicationPairing.pool_id)
                .where(ReplicationPairing.credential_digest == _digest(credential))
            ).first()
        return Peer(name=found[0], pool=found[1], keep_last=found[2]) if found else None

    def update(self, name: str, req: PairingUpdate) -> PairingInfo:
        with self.db.session() as s:
            row = s.scalars(
                select(ReplicationPairing).where(ReplicationPairing.name == name)
            ).first()
            if row is None:
                raise NotFound(f"no pairing named '{name}'")
            if req.keep_last is not None:
                row.keep_last = req.keep_last
        return next(p for p in self.list() if p.name == name)

    def list(self) -> list[PairingInfo]:
        now = utcnow()
        with self.db.session() as s:
            rows = s.execute(
                select(ReplicationPairing, Pool.name)
                .join(Pool, Pool.id == ReplicationPairing.pool_id)
                .order_by(ReplicationPairing.name)
            ).all()
            return [
                PairingInfo(
                    name=p.name,
                    pool=pool,
                    state="paired"
                    if p.paired_at
                    else "expired"
                    if p.expires_at < now
                    else "waiting",
                    source=p.source,
                    keep_last=p.keep_last,
                    created_at=p.created_at,
                    paired_at=p.paired_at,
                    expires_at=p.expires_at,
                )
                for p, pool in rows
            ]

    def delete(self, name: str) -> None:
        """Forget a pairing: its credential stops working at once (its replicas stay)."""
        with self.db.session() as s:
            row = s.scalars(
                select(ReplicationPairing).where(ReplicationPairing.name == name)
            ).first()
            if row is None:
                raise NotFound(f"no pairing named '{name}'")
            s.delete(row)
        self.events.record("info", "replication.pairing_deleted", name, f"pairing {name} deleted")


# -- the source: targets -------------------------------------------------------------------


class TargetCreate(Request):
    name: Name = Field(max_length=64, description="A name for the target box, e.g. `backup-site`.")
    url: str = Field(max_length=2048, description="The target's API, `https://host:8443`.")
    code: str = Field(max_length=128, description="What `replication accept` printed there.")


class TargetInfo(BaseModel):
    name: str
    url: str
    fingerprint: str = Field(description="SHA-256 of the target's certificate, pinned.")
    remote_name: str = Field(description="This box's pairing name on the target.")
    created_at: dt.datetime


@dataclass(frozen=True)
class Connection:
    name: str
    url: str
    der: bytes  # the target's certificate, the only one trusted
    credential: str

    def client(self, timeout: httpx.Timeout | float = TIMEOUT) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}{PEER_PREFIX}",
            verify=pinned_context(self.der),
            headers={"Authorization": f"Bearer {self.credential}"},
            timeout=timeout,
        )


def _handshake(host: str, port: int) -> bytes:
    """The certificate the server at host:port shows (DER), trusting nothing yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("no certificate")
    return der


def pinned_context(der: bytes) -> ssl.SSLContext:
    """Trust exactly this certificate, whatever host name it carries."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=der)
    return context


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise InvalidInput(field="url", reason="must be the target's API as https://host:port")
    try:
        return parts.hostname, parts.port or 443
    except ValueError:
        raise InvalidInput(field="url", reason="has an invalid port") from None


class Targets:
    def __init__(self, db: Database, events: EventService, sealer: Sealer) -> None:
        self.db = db
        self.events = events
        self.sealer = sealer

    def add(self, req: TargetCreate) -> TargetInfo:
        _check_name(req.name)
        host, port = _endpoint(req.url)
        secret, _, pin = req.code.strip().upper().rpartition("-")
        if not secret or len(pin) != PIN_DIGITS:
            raise InvalidInput(field="code", reason="is not a pairing code (SECRET-FINGERPRINT)")
        with self.db.session() as s:
            if s.scalars(
                select(ReplicationTarget).where(ReplicationTarget.name == req.name)
            ).first():
                raise Conflict(f"a replication target named '{req.name}' exists", "name")
        url = req.url.rstrip("/")
        try:
            der = _handshake(host, port)
        except (OSError, ssl.SSLError) as exc:
            raise Unreachable(f"cannot reach {host}:{port} ({exc})") from None
        seen = fingerprint(der)
        if not hmac.compare_digest(_plain(seen)[:PIN_DIGITS], pin):
            raise Unauthorized(
                f"the certificate of {host}:{port} (SHA-256 {seen}) is not the one the pairing "
                "code names: a wrong code, or somebody between the two boxes"
            )
        answer = _post(url, der, "/pair", {"secret": secret, "source": socket.gethostname()})
        try:
            paired = PairAnswer.model_validate(answer)
        except ValueError:
            raise Unreachable(f"{url} answered the pairing with something else") from None
        try:
            with self.db.session() as s:
                row = ReplicationTarget(
                    name=req.name,
                    url=url,
                    fingerprint=seen,
                    certificate=ssl.DER_cert_to_PEM_cert(der),
                    credential_sealed=self.sealer.seal(paired.credential),
                    remote_name=paired.name,
                )
                s.add(row)
                s.flush()
                info = _target_info(row)
        except IntegrityError:
            raise Conflict(f"a replication target named '{req.name}' exists", "name") from None
        self.events.record(
            "info", "replication.target_added", req.name, f"replication target {req.name} at {url}"
        )
        return info

    def connection(self, name: str) -> Connection:
        """How to reach target ``name``: its URL, the certificate to trust, the credential."""
        with self.db.session() as s:
            row = s.scalars(select(ReplicationTarget).where(ReplicationTarget.name == name)).first()
            if row is None:
                raise NotFound(f"no replication target named '{name}'")
            url, pem, sealed = row.url, row.certificate, row.credential_sealed
        credential = self.sealer.open(sealed)
        if credential is None:
            raise SpeicherError(
                f"the credential for {name} cannot be opened (the state directory's "
                "s3/seal.key is not the one it was sealed with); pair again"
            )
        return Connection(name, url, ssl.PEM_cert_to_DER_cert(pem), credential)

    def list(self) -> list[TargetInfo]:
        with self.db.session() as s:
            rows = s.scalars(select(ReplicationTarget).order_by(ReplicationTarget.name)).all()
            return [_target_info(r) for r in rows]

    def delete(self, name: str) -> None:
        with self.db.session() as s:
            row = s.scalars(select(ReplicationTarget).where(ReplicationTarget.name == name)).first()
            if row is None:
                raise NotFound(f"no replication target named '{name}'")
            s.delete(row)
        self.events.record(
            "info", "replication.target_deleted", name, f"replication target {name} deleted"
        )


def _target_info(row: ReplicationTarget) -> TargetInfo:
    return TargetInfo(
        name=row.name,
        url=row.url,
        fingerprint=row.fingerprint,
        remote_name=row.remote_name,
        created_at=row.created_at,
    )


def _post(url: str, der: bytes, path: str, body: dict[str, Any]) -> Any:
    """A JSON request to the target's peer endpoints over the pinned certificate; its
    answer, or the target's own refusal as ours."""
    try:
        with httpx.Client(verify=pinned_context(der), timeout=TIMEOUT) as client:
            r = client.post(f"{url}{PEER_PREFIX}{path}", json=body)
    except httpx.HTTPError as exc:
        raise Unreachable(f"{url} did not answer ({exc})") from None
    if r.status_code >= 400:
        try:
            detail = str(r.json().get("detail", ""))
        except ValueError:
            detail = r.text[:200]
        error = Unauthorized if r.status_code in (401, 403) else Unreachable
        raise error(f"{url} refused: {detail or r.status_code}")
    try:
        return r.json()
    except ValueError:
        raise Unreachable(f"{url} answered with something other than JSON") from None
