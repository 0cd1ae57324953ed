"""Which server certificate the CLI accepts for ``--url https://...``.

- ``--ca FILE``: only certificates that FILE's CA (or FILE itself) signed, for the URL's host.
- Else a certificate the system trusts, for the URL's host.
- Else (a self-signed certificate, as Speicher makes at first start) trust on first use: the
  certificate's SHA-256 is pinned in ``known_hosts`` with one warning line, and later
  connections accept exactly that certificate; a different one is refused until the admin
  removes the pin.

Decision: all of this is decided in separate handshakes *before* the real connection, which
then trusts exactly the chosen certificate, so no credential is ever sent to a server that
has not passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from speicher.cli.client import CliError

TIMEOUT = 15.0


def known_hosts_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "speicher" / "known_hosts"


def fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _endpoint(url: str) -> tuple[str, int, str]:
    """Host, port and the ``host:port`` name of a pin."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise CliError(f"--url {url!r} has no host name", 2)
    try:
        port = parts.port or 443
    except ValueError:
        raise CliError(f"--url {url!r} has an invalid port", 2) from None
    host = parts.hostname.lower()
    name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host, port, name


def _handshake(context: ssl.SSLContext, host: str, port: int) -> bytes:
    """Connect, shake hands, send nothing; the server's certificate (DER)."""
    try:
        with (
            socket.create_connection((host, port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError:
        raise
    except (OSError, ssl.SSLError) as exc:
        raise CliError(
            f"cannot reach the Speicher daemon at {host}:{port} ({exc}); "
            "is 'speicher serve' running?"
        ) from None
    if not der:
        raise CliError(f"{host}:{port} sent no certificate")
    return der


class KnownHosts:
    """``host:port SHA256-fingerprint`` lines; the file is the user's own (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, name: str) -> str | None:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            fields = line.split()
            if len(fields) == 2 and fields[0] == name:
                return fields[1]
        return None

    def add(self, name: str, pin: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            old = self.path.read_text()
        except FileNotFoundError:
            old = ""
        kept = [line for line in old.splitlines() if line.split()[:1] != [name]]
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".known_hosts-")
        try:
            with os.fdopen(fd, "w") as fh:  # mkstemp made it 0600
                fh.write("".join(f"{line}\n" for line in [*kept, f"{name} {pin}"]))
            os.replace(temp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def _pinned_context(der: bytes) -> ssl.SSLContext:
    """Trust exactly this certificate, whatever host name it carries."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=der)
    return context


def context_for(
    url: str,
    ca: Path | None = None,
    known_hosts: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> ssl.SSLContext:
    """The SSL context the CLI's real connection to ``url`` must use."""
    host, port, name = _endpoint(url)
    if ca is not None:
        try:
            return ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"--ca {ca}: cannot load it as a CA certificate ({exc})", 2) from None
    store = KnownHosts(known_hosts or known_hosts_path())
    pin = store.get(name)
    system = ssl.create_default_context()
    if pin is None:
        try:
            _handshake(system, host, port)
            return system
        except ssl.SSLCertVerificationError:
            pass
    anything = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    der = _handshake(anything, host, port)
    seen = fingerprint(der)
    if pin is None:
        store.add(name, seen)
        (warn or _stderr)(
            f"warning: {name} has a certificate no CA vouches for; trusting it from now on "
            f"(SHA-256 {seen}, pinned in {store.path})"
        )
        return _pinned_context(der)
    if seen == pin:
        return _pinned_context(der)
    with contextlib.suppress(ssl.SSLCertVerificationError):
        _handshake(system, host, port)  # replaced by one a CA vouches for: as good as a pin
        return system
    raise CliError(
        f"the certificate of {name} has changed (SHA-256 {seen}, pinned {pin}) and no CA "
        f"vouches for it; if it was replaced on purpose (check 'speicher system certificate "
        f"show' on the server), delete the line '{name}' from {store.path} or use --ca FILE",
        2,
    )


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
