"""A 2 GiB upload through the file manager that loses its connection halfway and resumes.

    sudo .venv/bin/python bench/web_upload.py [--size-mib 2048] [--cut-at-mib 1000]

It starts a real daemon (``tests/speicher_testing.Daemon``) with a pool on a virtual disk and
a user with a share, logs the user in over HTTPS and sends the file as the file manager's
script does: 8 MiB pieces (``PUT /files/<share>/<path>`` with ``X-Upload-Id``,
``X-Upload-Offset``, ``X-Upload-Total``). The piece at ``--cut-at-mib`` is sent half and its
TLS connection is torn down, as a dropped Wi-Fi does. Then the upload asks the server where it
stands (a 409 names the offset), goes on from there on a new connection and finishes. Printed:
the offset it resumed at, MB/s of the whole upload (the cut and the wait included), and whether
the file on the share is byte-identical (SHA-256). Everything it made is removed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "web"))

from web_helpers import put_piece
from web_pages import session

from speicher_testing import Daemon

MiB = 1024 * 1024
PIECE = 8 * MiB
USER, USER_PASSWORD = "bench", "bench-password-1"
UPLOAD = "bench-upload-0001"


def data(size: int) -> bytes:
    """Random bytes (incompressible), made from one 64 MiB block so making them is quick."""
    block = os.urandom(64 * MiB)
    whole = bytearray()
    i = 0
    while len(whole) < size:
        whole += block[i % 7 * MiB :] + block[: i % 7 * MiB]  # each block shifted: no repeats
        i += 1
    return bytes(whole[:size])


def session_with_csrf(daemon: Daemon) -> tuple[httpx.Client, str]:
    """The user's browser session, and the CSRF token its uploads carry."""
    client = session(daemon, USER, USER_PASSWORD)
    page = client.get("/files/docs/")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return client, csrf


def put(client: httpx.Client, csrf: str, offset: int, total: int, body: bytes) -> httpx.Response:
    return put_piece(client, csrf, "/files/docs/big.bin", UPLOAD, offset, total, body)


def cut_piece(daemon: Daemon, client: httpx.Client, csrf: str, offset: int, total: int,
              piece: bytes) -> None:  # fmt: skip
    """Half of ``piece`` on its own TLS connection, which then breaks."""
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    head = (
        f"PUT /files/docs/big.bin HTTP/1.1\r\nHost: 127.0.0.1:{daemon.https_port}\r\n"
        f"Origin: {daemon.https_url}\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"
        f"X-Upload-Id: {UPLOAD}\r\nX-Upload-Offset: {offset}\r\nX-Upload-Total: {total}\r\n"
        f"Content-Length: {len(piece)}\r\n\r\n"
    )
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", daemon.https_port))
    with raw, context.wrap_socket(raw) as tls:
        tls.sendall(head.encode() + piece[: len(piece) // 2])
        time.sleep(0.5)
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


def where(client: httpx.Client, csrf: str, total: int) -> int:
    """Where the upload stands, as the script asks after an error: a piece past the end is
    answered 409 with the offset (None while the cut piece is still being written)."""
    for _ in range(600):
        probe = put(client, csrf, total + 1, total, b"")
        assert probe.status_code == 409, probe.text
        offset = probe.json()["offset"]
        if offset is not None:
            return int(offset)
        time.sleep(0.1)
    raise AssertionError("the server never said where the upload stands")


def build(daemon: Daemon, size_mib: int) -> Path:
    """The daemon started, with a pool roomy enough, the user and the share; where the file
    will be."""
    daemon.start()
    api = daemon.api
    disk_gib = max(4, size_mib * 3 // 1024 + 1)
    r = api.post("/disks/virtual", json={"name": "u1", "size": f"{disk_gib}G"})
    assert r.status_code == 201, r.text
    job = api.post("/pools", json={"name": "uploads", "profile": "single", "disks": ["u1"]})
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    r = api.post("/users", json={"name": USER, "password": USER_PASSWORD})
    assert r.status_code == 201, r.text
    r = api.post("/shares", json={"name": "docs", "pool": "uploads"})
    assert r.status_code == 201, r.text
    stored = Path(r.json()["path"]) / "big.bin"
    r = api.post("/shares/docs/grants", json={"user": USER, "access": "rw"})
    assert r.status_code == 200, r.text
    return stored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--cut-at-mib", type=int, default=1000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, Unix accounts)")
    total = args.size_mib * MiB + 12_345  # not a multiple of a piece
    body = data(total)
    digest = hashlib.sha256(body).hexdigest()
    base = Path(tempfile.mkdtemp(prefix="speicher-uploadbench-", dir="/tmp"))
    base.chmod(0o755)
    daemon = Daemon(base)
    try:
        stored = build(daemon, args.size_mib)
        client, csrf = session_with_csrf(daemon)
        cut_at = args.cut_at_mib * MiB // PIECE * PIECE
        t0 = time.perf_counter()
        offset, resumed_at, cut = 0, -1, False
        while offset < total:
            piece = body[offset : offset + PIECE]
            if offset == cut_at and not cut:
                cut_piece(daemon, client, csrf, offset, total, piece)
                cut = True
                offset = resumed_at = where(client, csrf, total)
                continue
            r = put(client, csrf, offset, total, piece)
            assert r.status_code == 200, r.text
            offset = r.json()["offset"]
        seconds = time.perf_counter() - t0
        client.close()
        with stored.open("rb") as fh:
            same = hashlib.file_digest(fh, "sha256").hexdigest() == digest
    finally:
        daemon.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    print(f"size: {total:,} bytes; cut in the piece at {cut_at:,}, resumed at {resumed_at:,}")
    print(f"upload: {seconds:.1f} s, {total / seconds / 1e6:,.0f} MB/s (the cut included)")
    print(f"byte-identical: {'yes' if same else 'NO'}")
    return 0 if same and cut_at < resumed_at < cut_at + PIECE else 1


if __name__ == "__main__":
    sys.exit(main())
