"""The CLI over HTTPS: it checks the daemon's certificate before it sends any credential."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from speicher.tls import generate
from speicher_testing import Daemon, free_port

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def token_file(daemon: Daemon) -> Path:
    token = json.loads(daemon.cli("token", "create", "remote", "--json").stdout)["token"]
    path = daemon.base / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def known_hosts(daemon: Daemon) -> Path:
    return Path(daemon.env["XDG_CONFIG_HOME"]) / "speicher" / "known_hosts"


def remote(daemon: Daemon, token_file: Path, *args: str, check: bool = True) -> Any:
    return daemon.cli(
        "--url", daemon.https_url, "--token-file", str(token_file), *args, check=check
    )


def test_first_use_pins_the_self_signed_certificate(daemon: Daemon, token_file: Path) -> None:
    shown = json.loads(daemon.cli("system", "certificate", "show", "--json").stdout)
    first = remote(daemon, token_file, "token", "list", "--json")
    assert [t["name"] for t in json.loads(first.stdout)] == ["remote"]
    warning = first.stderr.strip().splitlines()
    assert len(warning) == 1, first.stderr
    assert warning[0].startswith("warning: ") and shown["sha256"] in warning[0]
    pins = known_hosts(daemon)
    assert pins.read_text() == f"127.0.0.1:{daemon.https_port} {shown['sha256']}\n"
    assert stat.S_IMODE(pins.stat().st_mode) == 0o600
    # once pinned, quietly
    again = remote(daemon, token_file, "system", "certificate", "show")
    assert again.stderr == ""
    assert shown["sha256"] in again.stdout


def test_the_token_can_come_from_the_environment_or_a_file(
    daemon: Daemon, token_file: Path
) -> None:
    url = ["--url", daemon.https_url]
    token = token_file.read_text().strip()
    by_env = daemon.cli(*url, "token", "list", env={"SPEICHER_TOKEN": token})
    assert "remote" in by_env.stdout
    by_file_env = daemon.cli(*url, "token", "list", env={"SPEICHER_TOKEN_FILE": str(token_file)})
    assert "remote" in by_file_env.stdout
    missing = daemon.cli(
        *url, "--token-file", str(daemon.base / "nope"), "pool", "list", check=False
    )
    assert missing.returncode == 2
    assert (
        missing.stderr == f"error: cannot read the token file {daemon.base / 'nope'}: "
        "No such file or directory\n"
    )
    empty = daemon.base / "empty-token"
    empty.write_text("\n")
    assert (
        "is empty"
        in daemon.cli(*url, "--token-file", str(empty), "pool", "list", check=False).stderr
    )


def test_a_changed_certificate_is_refused_until_re_pinned(daemon: Daemon, token_file: Path) -> None:
    remote(daemon, token_file, "pool", "list")  # pinned (by the test before, or now)
    made = json.loads(daemon.cli("system", "certificate", "generate", "--json").stdout)
    refused = remote(daemon, token_file, "pool", "list", check=False)
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, refused.stderr
    assert "has changed" in lines[0] and made["sha256"] in lines[0]
    assert f"delete the line '127.0.0.1:{daemon.https_port}' from {known_hosts(daemon)}" in lines[0]
    # --ca with the daemon's own (new) certificate: verified, whatever was pinned
    ca = daemon.state_dir / "tls" / "cert.pem"
    with_ca = remote(daemon, token_file, "--ca", str(ca), "system", "certificate", "show")
    assert made["sha256"] in with_ca.stdout and with_ca.stderr == ""
    # re-pinning is deleting the line
    known_hosts(daemon).write_text("")
    repinned = remote(daemon, token_file, "pool", "list")
    assert made["sha256"] in repinned.stderr


def test_ca_refuses_a_certificate_it_did_not_sign(daemon: Daemon, token_file: Path) -> None:
    other, _ = generate(["elsewhere"], [])
    ca = daemon.base / "other-ca.pem"
    ca.write_bytes(other)
    r = remote(daemon, token_file, "--ca", str(ca), "pool", "list", check=False)
    assert r.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in r.stderr and len(r.stderr.splitlines()) == 1
    bad = remote(
        daemon, token_file, "--ca", str(daemon.base / "none.pem"), "pool", "list", check=False
    )
    assert bad.returncode == 2 and "--ca" in bad.stderr


def test_the_certificate_commands(daemon: Daemon, token_file: Path) -> None:
    cert, key = generate(["nas.example.com"], [])
    (daemon.base / "nas.crt").write_bytes(cert)
    (daemon.base / "nas.key").write_bytes(key)
    _, other_key = generate(["x"], [])
    (daemon.base / "other.key").write_bytes(other_key)
    out = daemon.cli(
        "system",
        "certificate",
        "set",
        "--cert",
        str(daemon.base / "nas.crt"),
        "--key",
        str(daemon.base / "nas.key"),
    ).stdout
    assert "nas.example.com" in out and "SHA-256" in out
    wrong = daemon.cli(
        "system",
        "certificate",
        "set",
        "--cert",
        str(daemon.base / "nas.crt"),
        "--key",
        str(daemon.base / "other.key"),
        check=False,
    )
    assert wrong.returncode == 2
    assert wrong.stderr == "error: key: does not belong to the certificate\n"
    missing = daemon.cli(
        "system",
        "certificate",
        "set",
        "--cert",
        str(daemon.base / "x.crt"),
        "--key",
        str(daemon.base / "nas.key"),
        check=False,
    )
    assert missing.returncode == 2 and "cannot read the certificate file" in missing.stderr


class Impostor:
    """A TLS server with a certificate of its own that records what clients send it."""

    def __init__(self, directory: Path) -> None:
        cert, key = generate(["impostor"], [])
        pem = directory / "impostor.pem"
        pem.write_bytes(key + cert)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pem)
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(30)
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    tls.settimeout(2)
                    while chunk := tls.recv(4096):
                        self.received += chunk
            except OSError:
                continue

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


def test_no_credential_reaches_a_server_that_does_not_match_the_pin(
    daemon: Daemon, token_file: Path
) -> None:
    impostor = Impostor(daemon.base)
    try:
        pins = known_hosts(daemon)
        pins.parent.mkdir(parents=True, exist_ok=True)
        pins.write_text(f"127.0.0.1:{impostor.port} AA:BB\n")
        url = f"https://127.0.0.1:{impostor.port}"
        r = daemon.cli("--url", url, "--token-file", str(token_file), "pool", "list", check=False)
        assert r.returncode == 2 and "has changed" in r.stderr
    finally:
        impostor.close()
    assert impostor.received == b""  # handshakes only: no request, no token


def test_a_non_root_user_is_told_to_use_a_url_and_a_token(daemon: Daemon) -> None:
    from fsaccess import as_user
    from speicher_testing import speicher_executable

    created = daemon.api.post("/users", json={"name": "nonroot", "password": "nonroot-pass-1"})
    assert created.status_code == 201, created.text
    r = as_user(
        daemon.unix_name("nonroot"),
        "env",
        f"SPEICHER_STATE_DIR={daemon.state_dir}",
        speicher_executable(),
        "pool",
        "list",
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr == (
        f"error: only root may use {daemon.state_dir / 'speicher.sock'}: run as root, or use "
        "--url https://HOST:8443 with a token (--token-file or SPEICHER_TOKEN)\n"
    )
