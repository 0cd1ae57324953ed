"""SSH public keys of users, for logins over SFTP.

A key is parsed and checked once, when it is added (:func:`parse`, with asyncssh), and stored
in canonical OpenSSH form, ``<algorithm> <base64>``: the SFTP server reads exactly what was
checked (:meth:`KeyService.authorized`), never the text someone sent. The comment is kept
apart, so nothing typed after the key ever reaches an authorized-keys parser.

Refused, each with a reason naming the field ``key``: private keys, DSA (OpenSSH dropped it),
RSA below 2048 bits, authorized_keys lines with options (``command="..."``, ``from=...``: a key
here grants exactly an SFTP login, nothing a line's options could narrow or widen),
certificates, several keys at once, and anything asyncssh cannot read.
"""

from __future__ import annotations

import base64
import builtins
import re
from dataclasses import dataclass

import asyncssh
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from speicher import names
from speicher.access.models import KeyInfo
from speicher.db import Database, SshKey, User
from speicher.errors import Conflict, InvalidInput, NotFound
from speicher.events import EventService
from speicher.validation import control_reason

FIELD = "key"
MIN_RSA_BITS = 2048
MAX_COMMENT = 256
# what SFTP logins may use: OpenSSH's current key types (with security-key variants)
ALGORITHMS = frozenset(
    {
        "ssh-ed25519",
        "ssh-ed448",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)

_PRIVATE = re.compile(
    r"^(-{4,5} ?BEGIN [A-Z0-9 ]*PRIVATE KEY ?-{4,5}|PuTTY-User-Key-File-\d+:)", re.MULTILINE
)
_RFC4716_BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----"
_RFC4716_END = "---- END SSH2 PUBLIC KEY ----"
_KEY_TYPE = re.compile(r"^(ssh|ecdsa|sk)-[A-Za-z0-9@.+-]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")

EXPECTED = (
    "give one public key: the line of a .pub file (ssh-ed25519 AAAA... comment) or an "
    "RFC 4716 block (---- BEGIN SSH2 PUBLIC KEY ----)"
)


@dataclass(frozen=True)
class PublicKey:
    """A checked public key."""

    algorithm: str
    fingerprint: str  # SHA256:<base64 without padding>, as ssh-keygen -l shows it
    comment: str
    openssh: str  # "<algorithm> <base64>"


def _refuse(reason: str) -> InvalidInput:
    return InvalidInput(field=FIELD, reason=reason)


def parse(text: str) -> PublicKey:
    """The one public key ``text`` holds, checked; :class:`InvalidInput` naming ``key``
    otherwise."""
    body = text.strip()
    if not body:
        raise _refuse(f"is empty; {EXPECTED}")
    if _PRIVATE.search(body):
        raise _refuse("this is a private key; give the .pub file (and keep the private key secret)")
    if _RFC4716_BEGIN in body or _RFC4716_END in body:
        return _parse_rfc4716(body)
    if body.startswith("-----BEGIN "):
        label = body.splitlines()[0].strip("- ").removeprefix("BEGIN ")
        if label == "PUBLIC KEY":
            raise _refuse(
                "is a PEM public key; give it in OpenSSH form: ssh-keygen -i -m PKCS8 -f FILE"
            )
        raise _refuse(f"is a PEM document ({label}), not an SSH public key; {EXPECTED}")
    return _parse_openssh(body)


def _parse_rfc4716(body: str) -> PublicKey:
    if body.count(_RFC4716_BEGIN) > 1:
        raise _refuse("holds several keys; give one key per request")
    if not (body.startswith(_RFC4716_BEGIN) and body.endswith(_RFC4716_END)):
        raise _refuse(f"has text outside its ---- BEGIN/END SSH2 PUBLIC KEY ---- lines; {EXPECTED}")
    key = _import(body)
    comment = key.get_comment() or ""
    return _checked(key, comment)


def _parse_openssh(body: str) -> PublicKey:
    lines = [ln.strip() for ln in body.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) > 1:
        keys = sum(1 for ln in lines if any(_KEY_TYPE.match(t) for t in ln.split()))
        # each a whole sentence: the web console translates reasons by their templates
        raise _refuse(
            f"holds {keys} keys; give one key (one line) per request"
            if keys > 1
            else f"holds {len(lines)} lines; give one key (one line) per request"
        )
    if not lines:
        raise _refuse(f"holds no key; {EXPECTED}")
    line = lines[0]
    tokens = line.split()
    at = next(
        (
            i
            for i, token in enumerate(tokens[:-1])
            if _KEY_TYPE.match(token) and _BASE64.match(tokens[i + 1])
        ),
        None,
    )
    if at is None:
        raise _refuse(f"is not an SSH public key; {EXPECTED}")
    if at > 0:
        raise _refuse(
            "authorized_keys options (command=..., from=..., ...) are not accepted; give the "
            "key alone: the line of its .pub file"
        )
    algorithm, blob = tokens[0], tokens[1]
    if algorithm == "ssh-dss":
        raise _dsa()
    if algorithm.endswith("-cert-v01@openssh.com"):
        raise _refuse("this is an SSH certificate; give the public key itself (the .pub file)")
    key = _import(f"{algorithm} {blob}")
    if key.get_algorithm() != algorithm:
        raise _refuse(f"says {algorithm} but holds a {key.get_algorithm()} key")
    parts = line.split(None, 2)
    return _checked(key, parts[2].strip() if len(parts) == 3 else "")


def _import(text: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError):
        raise _refuse(f"is not a valid SSH public key; {EXPECTED}") from None


def _dsa() -> InvalidInput:
    return _refuse(
        "DSA keys are not accepted (too weak; OpenSSH no longer supports them); "
        "make an ed25519 key: ssh-keygen -t ed25519"
    )


def _checked(key: asyncssh.SSHKey, comment: str) -> PublicKey:
    algorithm = key.get_algorithm()
    if algorithm == "ssh-dss":
        raise _dsa()
    if algorithm not in ALGORITHMS:
        raise _refuse(
            f"keys of type {algorithm} are not accepted; use ed25519, ecdsa or rsa "
            f"(at least {MIN_RSA_BITS} bits)"
        )
    if algorithm == "ssh-rsa":
        bits = int(getattr(key.pyca_key, "key_size", 0))
        if bits < MIN_RSA_BITS:
            raise _refuse(
                f"RSA keys need at least {MIN_RSA_BITS} bits, this one has {bits}; "
                "make an ed25519 key: ssh-keygen -t ed25519"
            )
    if reason := control_reason(comment):
        raise _refuse(f"its comment {reason}")
    if len(comment) > MAX_COMMENT:
        raise _refuse(f"its comment is longer than {MAX_COMMENT} characters")
    return PublicKey(
        algorithm=algorithm,
        fingerprint=key.get_fingerprint("sha256"),
        comment=comment,
        openssh=f"{algorithm} {base64.b64encode(key.public_data).decode('ascii')}",
    )


def _info(row: SshKey) -> KeyInfo:
    return KeyInfo(
        fingerprint=row.fingerprint,
        algorithm=row.algorithm,
        comment=row.comment,
        public_key=row.public_key,
        created_at=row.created_at,
    )


def ready_user(s: Session, name: str) -> User:
    """The ready user row named ``name`` (any case); NotFound otherwise."""
    user = s.scalars(select(User).where(User.name == names.normalize(name))).first()
    if user is None or user.state != "ready":
        raise NotFound(f"user '{name}' does not exist")
    return user


def _fingerprint(text: str) -> str:
    """A fingerprint as typed, with or without its ``SHA256:`` prefix."""
    text = text.strip()
    return text if text.startswith("SHA256:") else f"SHA256:{text}"


class KeyService:
    """Users' SSH public keys. A user's keys go with the user (``ON DELETE CASCADE``)."""

    def __init__(self, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events

    def add(self, user: str, text: str) -> KeyInfo:
        key = parse(text)  # before any session: a bad key is refused without a look-up
        try:
            with self.db.session() as s:
                row = ready_user(s, user)
                name = row.name
                taken = s.scalars(
                    select(SshKey).where(
                        SshKey.user_id == row.id, SshKey.fingerprint == key.fingerprint
                    )
                ).first()
                if taken is not None:
                    raise Conflict(f"user {name} already has key {key.fingerprint}", field=FIELD)
                added = SshKey(
                    user_id=row.id,
                    fingerprint=key.fingerprint,
                    algorithm=key.algorithm,
                    comment=key.comment,
                    public_key=key.openssh,
                )
                s.add(added)
                s.flush()
                info = _info(added)
        except IntegrityError:
            raise Conflict(f"user {user} already has key {key.fingerprint}", field=FIELD) from None
        self.events.record(
            "info",
            "user.key_added",
            name,
            f"SSH key {key.fingerprint} ({key.algorithm}) added to {name}",
        )
        return info

    def list(self, user: str) -> builtins.list[KeyInfo]:
        with self.db.session() as s:
            row = ready_user(s, user)
            query = select(SshKey).where(SshKey.user_id == row.id).order_by(SshKey.id)
            return [_info(k) for k in s.scalars(query)]

    def remove(self, user: str, fingerprint: str) -> None:
        wanted = _fingerprint(fingerprint)
        with self.db.session() as s:
            row = ready_user(s, user)
            name = row.name
            key = s.scalars(
                select(SshKey).where(SshKey.user_id == row.id, SshKey.fingerprint == wanted)
            ).first()
            if key is None:
                raise NotFound(f"user {name} has no key {wanted}")
            s.delete(key)
        self.events.record(
            "info", "user.key_removed", name, f"SSH key {wanted} removed from {name}"
        )

    def authorized(self, user_name: str) -> builtins.list[str]:
        """The keys ``user_name`` may log in with over SFTP, as OpenSSH lines
        (``<algorithm> <base64>``): none for an unknown, disabled or half-made user, and none
        for a user without file access (an API and console principal only, like for SMB)."""
        with self.db.session() as s:
            user = s.scalars(
                select(User).where(User.name == names.normalize(user_name), User.state == "ready")
            ).first()
            if user is None or not user.enabled or not user.file_access:
                return []
            query = select(SshKey.public_key).where(SshKey.user_id == user.id)
            return builtins.list(s.scalars(query.order_by(SshKey.id)))
