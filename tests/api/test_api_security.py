"""The API against an attacker: cross-site requests, password guessing, floods, and TLS.

Real daemons, real HTTP clients (httpx, the ssl module); wrong passwords come from distinct
loopback addresses (127.0.0.x) where the test needs distinct clients.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import stat
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from speicher.system import ip
from speicher.tls import fingerprint, generate
from speicher_testing import ADMIN_PASSWORD, Daemon

pytestmark = pytest.mark.system


def from_address(address: str, **kwargs: Any) -> httpx.Client:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is this host)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60, **kwargs)


def events(daemon: Daemon, kind: str) -> list[dict[str, Any]]:
    """Over the Unix socket, which no lockout reaches."""
    out = daemon.cli("event", "list", "--kind", kind, "--limit", "1000", "--json").stdout
    found: list[dict[str, Any]] = json.loads(out)
    return found


def served_fingerprint(port: int) -> str:
    """The SHA-256 of the certificate a fresh TLS connection gets."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket

    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return fingerprint(der)


# -- cross-site requests -----------------------------------------------------------------------


def test_a_cross_site_rollback_is_refused_and_changes_nothing(daemon: Daemon) -> None:
    """The reported attack: a bodyless form POST to .../rollback with Origin evil, carried by
    a browser's cached Basic credentials."""
    api = daemon.api
    assert api.post("/disks/virtual", json={"name": "x1", "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "xsite", "profile": "single", "disks": ["x1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    share = api.post("/shares", json={"name": "ledger", "pool": "xsite"})
    assert share.status_code == 201, share.text
    path = Path(share.json()["path"])
    (path / "books.txt").write_text("before")
    snap = api.post("/shares/ledger/snapshots", json={})
    assert snap.status_code == 201, snap.text
    (path / "books.txt").write_text("after: this must survive")
    rollback = f"{daemon.url}/api/v1/shares/ledger/snapshots/{snap.json()['name']}/rollback"
    basic = ("admin", ADMIN_PASSWORD)
    form = {"content-type": "application/x-www-form-urlencoded"}

    with httpx.Client(timeout=60) as browser:  # no X-Speicher-Request: what a page can send
        evil = browser.post(rollback, auth=basic, headers={**form, "origin": "http://evil"})
        assert evil.status_code == 403, evil.text
        assert "Origin" in evil.json()["detail"]
        # without an Origin (an old browser) the form content type alone is refused
        no_origin = browser.post(rollback, auth=basic, headers=form)
        assert no_origin.status_code == 403, no_origin.text
        assert "X-Speicher-Request" in no_origin.json()["detail"]
        plain = browser.post(rollback, auth=basic, headers={"content-type": "text/plain"})
        assert plain.status_code == 403
        # a DELETE without a body and without the header, too
        deleted = browser.delete(f"{daemon.url}/api/v1/shares/ledger/snapshots/x", auth=basic)
        assert deleted.status_code == 403
        # JSON with a foreign Origin is refused; with our own Origin it passes
        token = f"{daemon.url}/api/v1/tokens"
        foreign = browser.post(
            token, auth=basic, json={"name": "t1"}, headers={"origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        nulled = browser.post(token, auth=basic, json={"name": "t1"}, headers={"origin": "null"})
        assert nulled.status_code == 403
        same = browser.post(token, auth=basic, json={"name": "t1"}, headers={"origin": daemon.url})
        assert same.status_code == 201, same.text
        # reading needs no header
        assert browser.get(f"{daemon.url}/api/v1/tokens", auth=basic).status_code == 200
    assert (path / "books.txt").read_text() == "after: this must survive"
    assert [s["name"] for s in api.get("/shares/ledger/snapshots").json()] == [snap.json()["name"]]
    assert [t["name"] for t in api.get("/tokens").json()] == ["t1"]
    # what the CLI sends (the header, no body) works
    done = httpx.post(rollback, auth=basic, headers={"x-speicher-request": "1"}, timeout=120)
    assert done.status_code == 200, done.text
    assert (path / "books.txt").read_text() == "before"


def test_401_never_challenges_for_basic(daemon: Daemon) -> None:
    for credentials in (None, ("admin", "wrong-password-1")):
        r = httpx.get(f"{daemon.url}/api/v1/pools", auth=credentials, timeout=60)
        assert r.status_code == 401
        assert r.headers.get_list("www-authenticate") == ['Bearer realm="Speicher"']


# -- guessing and flooding -----------------------------------------------------------------------


def test_wrong_passwords_lock_the_address_and_the_user(fresh_daemon: Daemon) -> None:
    daemon = fresh_daemon
    token = daemon.api.post("/tokens", json={"name": "ops"}).json()["token"]
    answers = []
    with from_address("127.0.0.2", base_url=f"{daemon.url}/api/v1") as guesser:
        for n in range(30):
            answers.append(guesser.get("/system", auth=("admin", f"guess-{n:04d}")))
        statuses = [r.status_code for r in answers]
        assert statuses[:10] == [401] * 10, statuses
        assert set(statuses[10:]) == {429}, statuses
        locked = answers[-1]
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        assert "try again in" in locked.json()["detail"]
        # locked means locked: the right password is not even checked
        assert guesser.get("/system", auth=("admin", ADMIN_PASSWORD)).status_code == 429
        # a token is no password: it still works from the locked address
        bearer = guesser.get("/system", headers={"authorization": f"Bearer {token}"})
        assert bearer.status_code == 200
    # the user is locked from everywhere, the address for every user
    with from_address("127.0.0.3", base_url=f"{daemon.url}/api/v1") as other:
        assert other.get("/system", auth=("admin", ADMIN_PASSWORD)).status_code == 429
        assert other.get("/system", auth=("erin", "whatever-1")).status_code == 401
    with from_address("127.0.0.2", base_url=f"{daemon.url}/api/v1") as same:
        assert same.get("/system", auth=("erin", "whatever-1")).status_code == 429
    # root over the socket is never throttled
    assert "ops" in daemon.cli("token", "list").stdout
    lockouts = events(daemon, "auth.lockout")
    assert sorted(e["subject"] for e in lockouts) == ["127.0.0.2", "admin"], lockouts
    assert all(e["level"] == "warning" and "60 s" in e["message"] for e in lockouts)


def _vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_flood_of_wrong_passwords_stalls_neither_tokens_nor_memory(
    fresh_daemon: Daemon,
) -> None:
    """60 clients guessing at once, each from its own address for its own user name, so the
    per-key lockouts come late and the limit on concurrent checks does the work."""
    daemon = fresh_daemon
    assert daemon.proc is not None
    token = daemon.api.post("/tokens", json={"name": "monitor"}).json()["token"]
    stop = threading.Event()
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def guess(n: int) -> None:
        with from_address(f"127.0.1.{n + 1}", base_url=f"{daemon.url}/api/v1") as c:
            attempt = 0
            while not stop.is_set():
                attempt += 1
                r = c.get("/pools", auth=(f"flood{n}", f"wrong-{attempt}"))
                kind = str(r.status_code)
                if r.status_code == 429:
                    kind += " busy" if "busy" in r.json()["detail"] else " locked"
                with lock:
                    seen[kind] += 1

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(60)]
    for t in threads:
        t.start()
    statuses = []
    try:
        time.sleep(2)  # let the flood build up
        with httpx.Client(
            base_url=f"{daemon.url}/api/v1",
            headers={"authorization": f"Bearer {token}"},
            timeout=120,
        ) as monitor:
            for _ in range(20):
                statuses.append(monitor.get("/pools").status_code)
                time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert statuses == [200] * 20
    assert seen["429 busy"] > 0, seen
    assert set(seen) <= {"401", "429 busy", "429 locked"}, seen
    peak = _vm_hwm_mib(daemon.proc.pid)
    assert peak < 400, f"the daemon's peak RSS was {peak:.0f} MiB; answers: {seen}"


# -- HTTPS -----------------------------------------------------------------------------------


def test_https_certificate_is_made_at_first_start_and_replaceable(daemon: Daemon) -> None:
    tls = daemon.state_dir / "tls"
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    assert stat.S_IMODE((tls / "server.pem").stat().st_mode) == 0o600
    ca = ssl.create_default_context(cafile=str(tls / "cert.pem"))
    shown = daemon.api.get("/system/certificate").json()
    assert shown["self_signed"] is True
    assert {"localhost", "127.0.0.1", "::1"} <= set(shown["sans"])
    assert "PRIVATE KEY" not in shown["certificate"]
    assert shown["sha256"] == served_fingerprint(daemon.https_port)
    with httpx.Client(base_url=f"{daemon.https_url}/api/v1", verify=ca, timeout=60) as https:
        r = https.get("/system", auth=("admin", ADMIN_PASSWORD))
        assert r.status_code == 200 and r.url.scheme == "https"

    # the admin brings their own certificate: it is served to new connections, no restart
    cert, key = generate(["nas.example.com"], ["192.0.2.50"])
    put = daemon.api.put(
        "/system/certificate", json={"certificate": cert.decode(), "key": key.decode()}
    )
    assert put.status_code == 200, put.text
    assert put.json()["sans"] == ["nas.example.com", "127.0.0.1", "::1", "192.0.2.50"]
    assert served_fingerprint(daemon.https_port) == put.json()["sha256"] != shown["sha256"]
    assert [e["kind"] for e in events(daemon, "certificate.replaced")] == ["certificate.replaced"]

    # refused: another key, an expired certificate, not PEM; the served one stays
    _, other_key = generate(["x"], [])
    old = generate(["old"], [], now=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(days=3650))
    for body, field, reason in (
        ({"certificate": cert.decode(), "key": other_key.decode()}, "key", "does not belong"),
        ({"certificate": old[0].decode(), "key": old[1].decode()}, "certificate", "expired on"),
        ({"certificate": "hello", "key": key.decode()}, "certificate", "not a PEM certificate"),
        ({"certificate": cert.decode(), "key": "-----BEGIN PRIVATE KEY-----"}, "key", "not a PEM"),
    ):
        r = daemon.api.put("/system/certificate", json=body)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field], r.text
        assert reason in r.json()["errors"][0]["reason"]
    assert served_fingerprint(daemon.https_port) == put.json()["sha256"]

    # a new self-signed one
    made = daemon.api.post("/system/certificate/generate")
    assert made.status_code == 200, made.text
    assert made.json()["self_signed"] and made.json()["sha256"] != put.json()["sha256"]
    assert served_fingerprint(daemon.https_port) == made.json()["sha256"]


def test_by_default_https_listens_everywhere_and_http_only_on_localhost(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    remote = [a for a in ip.addresses() if not ipaddress.ip_address(a).is_loopback]
    if not remote:
        pytest.skip("this machine has no address but loopback")
    address = next((a for a in remote if ":" not in a), None)
    if address is None:
        pytest.skip("this machine has no IPv4 address but loopback")
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="speicher-test-", dir="/tmp"))
    daemon = Daemon(base)
    for name in ("SPEICHER_HTTPS_HOST", "SPEICHER_HTTP_HOST"):
        daemon.env.pop(name)
    try:
        daemon.start()
        with httpx.Client(verify=False, timeout=30) as c:  # noqa: S501 - only the port matters
            r = c.get(f"https://{address}:{daemon.https_port}/api/v1/system")
            assert r.status_code == 401  # HTTPS answers on the host's address
            with pytest.raises(httpx.ConnectError):
                c.get(f"http://{address}:{daemon.port}/api/v1/system")
        banner = daemon.log()
        assert f"https://{address}:{daemon.https_port}/api/v1" in banner
        assert f"http://127.0.0.1:{daemon.port}/api/v1  (plain HTTP, this machine only)" in banner
        assert "localhost" not in banner.split("is running.")[1].split("CLI:")[0]
    finally:
        daemon.cleanup()


def test_openssl_s_client_sees_tls(daemon: Daemon) -> None:
    """A client that is not Python: TLS 1.2 or newer."""
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.https_port}", "-brief"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert "Protocol version: TLSv1.3" in out.stderr + out.stdout, out.stderr
