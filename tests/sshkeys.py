"""SSH keys for tests, made fresh with cryptography (no ssh-keygen needed), in the forms users
hand them over: a .pub line, an RFC 4716 block, private key files."""

from __future__ import annotations

import base64
import hashlib
import struct

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# cryptography warns when it makes DSA keys, and -W error makes that fail: a fixed one
DSA_1024 = (
    "ssh-dss AAAAB3NzaC1kc3MAAACBAIAl+nDT/u5m1B82gje2kIuIoPPzHUWSzQPe/ucOFBtOt+BWxzT/M02MwEpYRL"
    "eokdU+XE5WZlsVMWotqkbLGTG9GMM0xmlJpkYCGuRKMhvo6ILBMtron9LI9tQz0c/cXBzQseqr5cPWwkuu2F4MfHXOg"
    "eBjrFVqrOTSIOkh7B0dAAAAFQCkXiOC1/ZZOnrkMc/7j0WcP/sGIwAAAIAeSY8SYponwu1kJW6SgBcyL1mZuC4BZ0aM"
    "jNgselkxEjzgpp+cOHtLgCr+YVHbI11UyLn/MiWSDMQhiM7MwwPhvOr2vEcB2F/11hllUdAUsX2yAfCyjGgUvajeglRn"
    "02I02jKgkAnPWLnVlHpZ1+ONX+6tzOKjSi8VUrh/+53TkwAAAIB/bLLMSzT+g6NeWqUzdZ+UKLGbow7q0d42WTl0eGu0"
    "+LHdtj7PO08cklW9pBZMZKFdreaquy+lxYS1lDuc4LF97qnlyQaBhvWySzTlg1qq1p8NYTMxAasSz4Crf0q/XbKdZvIZ"
    "0X0ixtUXMEq3w09au3jF95rQPbTSI6i0OFwjHA== old@box"
)


def _line(private: PrivateKeyTypes, comment: str) -> str:
    text = (
        private.public_key()
        .public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH)
        .decode("ascii")
    )
    return f"{text} {comment}" if comment else text


def ed25519_key(comment: str = "alice@laptop") -> str:
    """A new ed25519 public key as the line of its .pub file (without the newline)."""
    return _line(ed25519.Ed25519PrivateKey.generate(), comment)


def ecdsa_key(comment: str = "alice@desk", curve: ec.EllipticCurve | None = None) -> str:
    return _line(ec.generate_private_key(curve or ec.SECP256R1()), comment)


def rsa_key(bits: int = 2048, comment: str = "alice@old-laptop") -> str:
    return _line(rsa.generate_private_key(65537, bits), comment)


def sk_ed25519_key(comment: str = "alice@yubikey") -> str:
    """A security-key (FIDO) ed25519 public key: the key, then the application string."""
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    )
    blob = b"".join(
        struct.pack(">I", len(part)) + part
        for part in (b"sk-ssh-ed25519@openssh.com", public, b"ssh:")
    )
    return f"sk-ssh-ed25519@openssh.com {base64.b64encode(blob).decode()} {comment}"


def private_openssh() -> str:
    """An ed25519 private key as ssh-keygen writes it (id_ed25519)."""
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())
        .decode()
    )


def private_pem_rsa() -> str:
    """An RSA private key in the old PEM form (-----BEGIN RSA PRIVATE KEY-----)."""
    return (
        rsa.generate_private_key(65537, 2048)
        .private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())
        .decode()
    )


def rfc4716(line: str, comment: str = "alice's key") -> str:
    """The key of an OpenSSH line as an RFC 4716 block (what ``ssh-keygen -e`` writes)."""
    blob = line.split()[1]
    body = "\n".join(blob[i : i + 70] for i in range(0, len(blob), 70))
    return (
        f'---- BEGIN SSH2 PUBLIC KEY ----\nComment: "{comment}"\n{body}\n'
        "---- END SSH2 PUBLIC KEY ----\n"
    )


def fingerprint(line: str) -> str:
    """The SHA-256 fingerprint of a key line, computed as OpenSSH does (not by Speicher)."""
    digest = hashlib.sha256(base64.b64decode(line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def bare(line: str) -> str:
    """``<algorithm> <base64>`` of a key line: what Speicher stores and the SFTP server gets."""
    algorithm, blob = line.split()[:2]
    return f"{algorithm} {blob}"


def slash_key() -> str:
    """An ed25519 key whose fingerprint holds '/' and '+' (which its removal's URL must
    carry)."""
    while True:
        line = ed25519_key("slash@test")
        if "/" in fingerprint(line) and "+" in fingerprint(line):
            return line
