"""SSH public keys: what is accepted, what is refused and why, and what the SFTP server gets.

The parser is pure; the service runs on a real SQLite database migrated to the newest schema.
Keys are made fresh with cryptography (``tests/sshkeys.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from speicher.access import keys
from speicher.access.keys import KeyService
from speicher.db import Database, SshKey, User
from speicher.errors import Conflict, InvalidInput, NotFound
from speicher.events import EventService
from sshkeys import (
    DSA_1024,
    bare,
    ecdsa_key,
    ed25519_key,
    fingerprint,
    private_openssh,
    private_pem_rsa,
    rfc4716,
    rsa_key,
    sk_ed25519_key,
    slash_key,
)


def refused(text: str) -> str:
    """The reason ``text`` is refused (the problem must name the field ``key``)."""
    with pytest.raises(InvalidInput) as raised:
        keys.parse(text)
    [problem] = raised.value.problems
    assert problem.field == "key"
    return problem.reason


# -- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (lambda: ed25519_key("alice@laptop"), "ssh-ed25519"),
        (lambda: ecdsa_key("alice@desk"), "ecdsa-sha2-nistp256"),
        (lambda: ecdsa_key("alice@desk", ec.SECP384R1()), "ecdsa-sha2-nistp384"),
        (lambda: ecdsa_key("alice@desk", ec.SECP521R1()), "ecdsa-sha2-nistp521"),
        (lambda: rsa_key(2048, "alice@old"), "ssh-rsa"),
        (lambda: rsa_key(3072, "alice@old"), "ssh-rsa"),
        (lambda: sk_ed25519_key("alice@yubikey"), "sk-ssh-ed25519@openssh.com"),
    ],
    ids=["ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa-2048", "rsa-3072", "sk-ed25519"],
)
def test_openssh_lines_are_accepted(make: object, algorithm: str) -> None:
    line = make()  # type: ignore[operator]
    key = keys.parse(line + "\n")
    assert key.algorithm == algorithm
    assert key.fingerprint == fingerprint(line)  # as ssh-keygen -l shows it
    assert key.openssh == bare(line)  # stored without the comment
    assert key.comment == line.split(None, 2)[2]


def test_the_comment_is_kept_as_written_and_may_be_missing() -> None:
    line = ed25519_key("Alice Müller [work]  laptop")
    assert keys.parse(line).comment == "Alice Müller [work]  laptop"
    assert keys.parse(bare(line)).comment == ""
    assert keys.parse(ed25519_key("x" * 256)).comment == "x" * 256


def test_line_ends_blank_lines_and_comment_lines_around_one_key() -> None:
    line = ed25519_key()
    for text in (f"{line}\r\n", f"\n\n  {line}  \n\n", f"# my laptop\n{line}\n"):
        assert keys.parse(text).fingerprint == fingerprint(line)


def test_an_rfc4716_block_is_accepted() -> None:
    line = ed25519_key()
    key = keys.parse(rfc4716(line, "alice's key"))
    assert key.fingerprint == fingerprint(line)
    assert key.openssh == bare(line)
    assert key.comment == "alice's key"
    assert keys.parse(rfc4716(rsa_key(2048))).algorithm == "ssh-rsa"


# -- refused ---------------------------------------------------------------------------------


def test_private_keys_are_refused() -> None:
    line = ed25519_key()
    for private in (
        private_openssh(),
        private_pem_rsa(),
        f"{line}\n{private_openssh()}",  # a .pub and the private key pasted together
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
    ):
        assert refused(private).startswith("this is a private key; give the .pub file")


def test_dsa_is_refused() -> None:
    assert "DSA keys are not accepted" in refused(DSA_1024)
    assert "DSA keys are not accepted" in refused(rfc4716(DSA_1024))


def test_rsa_below_2048_bits_is_refused() -> None:
    reason = refused(rsa_key(1024))
    assert "at least 2048 bits, this one has 1024" in reason
    assert "at least 2048 bits, this one has 2047" in refused(rsa_key(2047))
    assert "at least 2048 bits" in refused(rfc4716(rsa_key(1024)))


@pytest.mark.parametrize(
    "options",
    [
        'command="internal-sftp"',
        'from="10.0.0.0/8",no-pty',
        'command="echo hi; rm -rf /"',
        "restrict",
        "cert-authority",
    ],
)
def test_authorized_keys_options_are_refused(options: str) -> None:
    assert refused(f"{options} {ed25519_key()}").startswith("authorized_keys options")


def test_several_keys_are_refused() -> None:
    assert "holds 2 keys" in refused(f"{ed25519_key()}\n{ecdsa_key()}\n")
    assert "holds 3 keys" in refused("\n".join(ed25519_key() for _ in range(3)))
    assert "one key (one line) per request" in refused(f"{ed25519_key()}\nsomething else")
    two = rfc4716(ed25519_key()) + rfc4716(ed25519_key())
    assert "several keys" in refused(two)
    assert "outside" in refused(rfc4716(ed25519_key()) + ed25519_key())


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "ssh-ed25519",
        "ssh-ed25519 AAAA",
        "ssh-ed25519 not-base64!!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJ",
        "-----BEGIN CERTIFICATE-----\nMCowBQYDK2VwAyEA\n-----END CERTIFICATE-----",
        "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----",
        "# only a comment",
    ],
)
def test_garbage_is_refused(garbage: str) -> None:
    reason = refused(garbage)
    assert "give one public key: the line of a .pub file" in reason


def test_a_pem_public_key_is_refused_saying_how_to_convert_it() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    assert "ssh-keygen -i -m PKCS8 -f FILE" in refused(pem)


def test_a_key_of_one_type_named_as_another_is_refused() -> None:
    line = ed25519_key()
    assert "not a valid SSH public key" in refused("ssh-rsa " + line.split()[1])


def test_empty_text_is_refused() -> None:
    assert refused("").startswith("is empty")
    assert refused(" \n\t\n").startswith("is empty")


def test_certificates_are_refused() -> None:
    cert = "ssh-ed25519-cert-v01@openssh.com " + ed25519_key().split()[1]
    assert "SSH certificate" in refused(cert)


def test_comments_with_control_characters_or_too_long_are_refused() -> None:
    # the request model refuses them first; the parser holds alone (a key may come another way)
    assert "control characters" in refused(ed25519_key("evil\x1b[2Jcomment"))
    assert "control characters" in refused(ed25519_key("bell\x07"))
    assert "longer than 256" in refused(ed25519_key("x" * 257))
    assert "control characters" in refused(rfc4716(ed25519_key(), "esc\x1b[31m"))


# -- the service -----------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    database.migrate()
    try:
        yield database
    finally:
        database.close()


def add_user(db: Database, name: str, **kwargs: object) -> int:
    with db.session() as s:
        user = User(name=name, password_hash="x", state="ready", **kwargs)
        s.add(user)
        s.flush()
        return user.id


@pytest.fixture
def service(db: Database) -> KeyService:
    add_user(db, "alice", uid=20001)
    return KeyService(db, EventService(db))


def events(service: KeyService, kind: str) -> list[str]:
    return [e.message for e in service.events.list(kind=kind)]


def test_add_list_remove(service: KeyService) -> None:
    first, second = ed25519_key("alice@laptop"), rsa_key(2048, "alice@old")
    info = service.add("Alice", first)  # names are case-insensitive
    assert (info.fingerprint, info.algorithm, info.comment) == (
        fingerprint(first),
        "ssh-ed25519",
        "alice@laptop",
    )
    assert info.public_key == bare(first)
    service.add("alice", second)
    assert [k.fingerprint for k in service.list("alice")] == [
        fingerprint(first),
        fingerprint(second),
    ]
    assert service.authorized("ALICE") == [bare(first), bare(second)]
    assert events(service, "user.key_added") == [
        f"SSH key {fingerprint(second)} (ssh-rsa) added to alice",
        f"SSH key {fingerprint(first)} (ssh-ed25519) added to alice",
    ]
    service.remove("alice", fingerprint(first))
    assert [k.fingerprint for k in service.list("alice")] == [fingerprint(second)]
    assert events(service, "user.key_removed") == [
        f"SSH key {fingerprint(first)} removed from alice"
    ]
    # the prefix may be left out, as people copy it from ssh-keygen -l
    service.remove("alice", fingerprint(second).removeprefix("SHA256:"))
    assert service.list("alice") == []
    assert service.authorized("alice") == []


def test_the_same_key_twice_is_a_conflict(service: KeyService, db: Database) -> None:
    line = ed25519_key("laptop")
    service.add("alice", line)
    with pytest.raises(Conflict) as raised:
        service.add("alice", bare(line) + " another comment")
    assert raised.value.field == "key"
    assert fingerprint(line) in raised.value.message
    add_user(db, "bob", uid=20002)
    assert service.add("bob", line).fingerprint == fingerprint(line)  # per user


def test_unknown_users_and_keys(service: KeyService) -> None:
    with pytest.raises(NotFound, match="user 'nobody' does not exist"):
        service.add("nobody", ed25519_key())
    with pytest.raises(NotFound):
        service.list("nobody")
    with pytest.raises(NotFound, match="alice has no key SHA256:"):
        service.remove("alice", slash_key().split()[1])
    assert service.authorized("nobody") == []
    assert service.authorized("") == []


def test_a_refused_key_adds_nothing(service: KeyService) -> None:
    with pytest.raises(InvalidInput):
        service.add("alice", rsa_key(1024))
    assert service.list("alice") == []
    assert events(service, "user.key_added") == []


def test_only_enabled_users_with_file_access_get_their_keys(
    service: KeyService, db: Database
) -> None:
    line = ed25519_key()
    service.add("alice", line)
    assert service.authorized("alice") == [bare(line)]
    with db.session() as s:
        s.scalars(select(User).where(User.name == "alice")).one().enabled = False
    assert service.authorized("alice") == []
    assert [k.fingerprint for k in service.list("alice")] == [fingerprint(line)]  # kept
    with db.session() as s:
        alice = s.scalars(select(User).where(User.name == "alice")).one()
        alice.enabled, alice.file_access = True, False
    assert service.authorized("alice") == []
    with db.session() as s:
        alice = s.scalars(select(User).where(User.name == "alice")).one()
        alice.file_access, alice.state = True, "deleting"
    assert service.authorized("alice") == []
    with db.session() as s:
        s.scalars(select(User).where(User.name == "alice")).one().state = "ready"
    assert service.authorized("alice") == [bare(line)]


def test_deleting_a_user_deletes_its_keys(service: KeyService, db: Database) -> None:
    service.add("alice", ed25519_key())
    service.add("alice", ecdsa_key())
    with db.session() as s:
        s.delete(s.scalars(select(User).where(User.name == "alice")).one())
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SshKey)) == 0
    # SQLite may give the next user the same id: it must not find the old keys
    add_user(db, "alice", uid=20003)
    assert service.list("alice") == []
    assert service.authorized("alice") == []
