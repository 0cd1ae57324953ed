"""The API's TLS certificate: generated at first start, replaceable by the admin.

The certificate chain and its key live together in ``<state_dir>/tls/server.pem`` (mode 0600,
in a 0700 directory), so replacing them is one atomic rename and a crash never pairs a new
certificate with an old key. ``cert.pem`` beside it is a copy of the chain alone, for admins who
hand it to clients (``speicher --ca cert.pem``).

A replaced certificate takes effect without a restart: the daemon's server ``SSLContext`` is
registered here and re-loaded (``load_cert_chain``), which affects every connection made after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, Field

from speicher.errors import InvalidInput, Problem
from speicher.events import EventService
from speicher.system import ip
from speicher.validation import Request

VALID_DAYS = 5 * 365
MAX_PEM = 200_000  # characters; a chain of a few certificates is far below

Now = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateInfo(BaseModel):
    subject: str = Field(description="The certificate's subject (RFC 4514).")
    issuer: str = Field(description="Who signed it; the subject itself when self-signed.")
    self_signed: bool = Field(description="Whether it was signed by its own key.")
    sans: list[str] = Field(description="Host names and addresses it is valid for.")
    not_before: dt.datetime = Field(description="Valid from (UTC).")
    not_after: dt.datetime = Field(description="Valid until (UTC).")
    sha256: str = Field(
        description="SHA-256 fingerprint of the certificate (DER), as clients "
        "show it: hex pairs separated by colons."
    )
    certificate: str = Field(description="The certificate chain (PEM); no key.")


class CertificateUpload(Request):
    multiline = frozenset({"certificate", "key"})

    certificate: str = Field(
        max_length=MAX_PEM,
        description="PEM: the server certificate first, then any intermediate certificates.",
    )
    key: str = Field(max_length=MAX_PEM, description="PEM: its private key, not encrypted.")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER bytes, as browsers and ``openssl x509 -fingerprint``
    show it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return [*dns, *ips]


def describe(chain_pem: bytes) -> CertificateInfo:
    chain = x509.load_pem_x509_certificates(chain_pem)
    leaf = chain[0]
    return CertificateInfo(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        self_signed=leaf.issuer == leaf.subject,
        sans=_names(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        sha256=fingerprint(leaf.public_bytes(serialization.Encoding.DER)),
        certificate=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain).decode(),
    )


def host_names() -> list[str]:
    """The names a self-signed certificate is made for: the host name (and its mDNS name)
    and localhost."""
    name = socket.gethostname()
    names = [name] if name and name != "localhost" else []
    if name and "." not in name:
        names.append(f"{name}.local")
    return [*names, "localhost"]


def generate(names: list[str], addresses: list[str], now: Now = _utcnow) -> tuple[bytes, bytes]:
    """A new self-signed certificate (ECDSA P-256) and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "speicher")]
    )
    ips: list[str] = []
    for address in ["127.0.0.1", "::1", *addresses]:
        if address not in ips:
            ips.append(address)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(names)]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    start = now() - dt.timedelta(minutes=5)  # clients whose clocks run a little behind
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def validate(cert_pem: str, key_pem: str, now: Now = _utcnow) -> tuple[bytes, bytes]:
    """Check an uploaded certificate and key; return them normalised (PEM bytes)."""
    problems: list[Problem] = []
    chain: list[x509.Certificate] = []
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        problems.append(
            Problem("certificate", "is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
        )
    key = None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        problems.append(Problem("key", "is encrypted; give it without a passphrase"))
    except (ValueError, UnicodeError):
        problems.append(Problem("key", "is not a PEM private key (-----BEGIN PRIVATE KEY-----)"))
    if key is not None and not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        problems.append(Problem("key", "must be an RSA, ECDSA or EdDSA key"))
        key = None
    if chain:
        leaf = chain[0]
        moment = now()
        if leaf.not_valid_after_utc <= moment:
            problems.append(
                Problem("certificate", f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
            )
        elif leaf.not_valid_before_utc > moment:
            problems.append(
                Problem(
                    "certificate",
                    f"is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                )
            )
        if key is not None and _spki(leaf.public_key()) != _spki(key.public_key()):
            problems.append(Problem("key", "does not belong to the certificate"))
    if problems:
        raise InvalidInput(problems)
    assert key is not None
    chain_out = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_out = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return chain_out, key_out


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def server_context(path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(path)
    return context


class CertificateStore:
    """The certificate on disk and the live server contexts that use it."""

    def __init__(
        self,
        directory: Path,
        events: EventService | None = None,
        addresses: Callable[[], list[str]] | None = None,
    ) -> None:
        self.directory = directory
        self.events = events
        self.addresses = addresses or _host_addresses
        self._contexts: list[ssl.SSLContext] = []

    @property
    def path(self) -> Path:
        """Key and chain, root only."""
        return self.directory / "server.pem"

    @property
    def public_path(self) -> Path:
        return self.directory / "cert.pem"

    def ensure(self) -> bool:
        """Generate a self-signed certificate if there is none; True if it did."""
        if self.path.exists():
            return False
        self._write(*generate(host_names(), self.addresses()))
        if self.events:
            self.events.record(
                "info", "certificate.generated", "api", "generated a self-signed certificate"
            )
        return True

    def context(self) -> ssl.SSLContext:
        """A server context for the current certificate, re-loaded when it is replaced."""
        context = server_context(self.path)
        self._contexts.append(context)
        return context

    def show(self) -> CertificateInfo:
        return describe(self._chain())

    def replace(self, upload: CertificateUpload) -> CertificateInfo:
        chain, key = validate(upload.certificate, upload.key)
        self._write(chain, key, check=True)
        info = describe(chain)
        if self.events:
            self.events.record(
                "info",
                "certificate.replaced",
                "api",
                f"the API's certificate was replaced ({info.subject}, SHA-256 {info.sha256})",
            )
        return info

    def regenerate(self) -> CertificateInfo:
        chain, key = generate(host_names(), self.addresses())
        self._write(chain, key)
        info = describe(chain)
        if self.events:
            self.events.record(
                "info",
                "certificate.generated",
                "api",
                f"generated a new self-signed certificate (SHA-256 {info.sha256})",
            )
        return info

    def reload(self) -> None:
        """Make the live contexts serve the current file to new connections. Call on the
        event loop's thread, which is where handshakes happen."""
        for context in self._contexts:
            context.load_cert_chain(self.path)

    def _chain(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in x509.load_pem_x509_certificates(self.path.read_bytes())
        )

    def _write(self, chain: bytes, key: bytes, *, check: bool = False) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        new = self._temp(key + chain, 0o600)
        try:
            if check:
                try:
                    server_context(new)  # what OpenSSL itself refuses (weak keys, ...)
                except ssl.SSLError as exc:
                    raise InvalidInput(
                        field="certificate", reason=f"is refused for TLS: {exc.reason or exc}"
                    ) from None
            os.replace(new, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                new.unlink()
        os.replace(self._temp(chain, 0o644), self.public_path)

    def _temp(self, data: bytes, mode: int) -> Path:
        fd, name = tempfile.mkstemp(dir=self.directory, prefix=".new-")
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return Path(name)


def _host_addresses() -> list[str]:
    return ip.addresses()
