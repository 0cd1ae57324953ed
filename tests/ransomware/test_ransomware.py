"""Ransomware, as it comes: a script that walks a share as a granted user over SMB (Python's
smbprotocol, as a Windows laptop's SMB client would), encrypts every file with AES in place
and renames it to ``.locked``, as fast as it can. It must be stopped after a bounded number
of files, the user cut off everywhere, a critical alert raised, and ``ransomware resolve
--restore`` must bring every file back byte-identical while a colleague's later work stays.
An office day's work over SMB raises nothing; an attack over WebDAV is stopped too."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import random
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import smbclient  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sftp_helpers import run_sftp
from smb_helpers import SmbUser, smb_user

from speicher_testing import Daemon
from world import make_pool, make_share, make_user, password

pytestmark = pytest.mark.system

CANARY = "!0-Speicher-Canary - do not change.docx"
FOLDERS = ("sales", "projects/2026", "projects/2025", "hr")


def words(rng: random.Random, n: int) -> bytes:
    vocabulary = b"Angebot Rechnung Kunde Lieferung Betrag Summe Datum Projekt the and of".split()
    return b" ".join(rng.choice(vocabulary) for _ in range(n // 6 + 1))[:n]


def document(rng: random.Random, n: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", words(rng, n))
    return out.getvalue()


def populate(top: Path, seed: int, per_folder: int = 30) -> dict[str, bytes]:
    """Office files of odd sizes, written as root beneath the share (they inherit its ACL)."""
    rng = random.Random(seed)  # noqa: S311 - test data
    files: dict[str, bytes] = {}
    for folder in FOLDERS:
        (top / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_folder):
            if i % 3 == 0:
                name, data = f"{folder}/offer-{i}.docx", document(rng, rng.randint(2000, 90_000))
            else:
                name, data = f"{folder}/notes-{i}.txt", words(rng, rng.randint(300, 70_001))
            (top / name).write_bytes(data)
            files[name] = data
    return files


def encrypt(data: bytes) -> bytes:
    key, nonce = os.urandom(32), os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def smb_attack(client: SmbUser, share: str, start: str = "") -> list[str]:
    """Walk the share from ``start`` in the server's order (as FindFirstFile does), each file:
    read, encrypt, write back in place, rename to ``.locked``; a note in every folder. Until
    the server stops it. Returns the files it encrypted."""
    done: list[str] = []
    kw = client._kw()

    def walk(folder: str) -> None:
        with smbclient.open_file(client.unc(share, f"{folder}/README-DECRYPT.txt".lstrip("/")),
                                 mode="wb", **kw) as fh:  # fmt: skip
            fh.write(b"Your files are encrypted. Pay 1 BTC.\n")
        for entry in list(smbclient.scandir(client.unc(share, folder), **kw)):
            name = f"{folder}/{entry.name}".lstrip("/")
            if entry.is_dir():
                walk(name)
                continue
            if entry.name.endswith(".locked") or entry.name == "README-DECRYPT.txt":
                continue
            with smbclient.open_file(client.unc(share, name), mode="r+b", **kw) as fh:
                data = fh.read()
                fh.seek(0)
                fh.write(encrypt(data))
            smbclient.rename(client.unc(share, name), client.unc(share, name + ".locked"), **kw)
            done.append(name)

    # the handles open when the server hung up are gone: their objects may be dropped as
    # soon as the exception is, so the warning is off from the first file on
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with contextlib.suppress(Exception):  # until cut off: the session ended, the user refused
            walk(start)
        client.close()
        gc.collect()
    return done


def incidents(daemon: Daemon, timeout: float = 20) -> list[dict[str, Any]]:
    """The incidents, once there is one with its response written (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        r = daemon.api.get("/ransomware/incidents")
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()
        if (found and found[0]["response"]) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def open_incidents(daemon: Daemon) -> int:
    """``speicher_ransomware_incidents_open`` as /metrics answers it to an admin's token."""
    token = daemon.api.post("/tokens", json={"name": f"prometheus-{time.monotonic_ns()}"})
    assert token.status_code == 201, token.text
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}
    r = httpx.get(f"{daemon.url}/metrics", headers=bearer, timeout=30)
    assert r.status_code == 200, r.text
    (line,) = [
        x for x in r.text.splitlines() if x.startswith("speicher_ransomware_incidents_open ")
    ]
    return int(float(line.split()[1]))


def tree(top: Path) -> dict[str, bytes]:
    """Every file of the share but the canaries and Speicher's own folder."""
    return {
        str(p.relative_to(top)): p.read_bytes()
        for p in sorted(top.rglob("*"))
        if p.is_file() and not p.name.startswith(("!0-Speicher", "zzz-Speicher", ".speicher"))
        and ".speicher" not in p.parts
    }  # fmt: skip


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    for user in ("alice", "bob", "carol", "dave", "erin"):
        make_user(daemon, user)
    top = make_share(
        daemon,
        "office",
        {"alice": "rw", "bob": "rw", "carol": "rw", "erin": "rw"},
        smb={"enabled": True},
        webdav=True,
        sftp=True,
    )
    daemon.cli("ransomware", "policy", "office", "--canary")  # before its files: first
    files = populate(top, 1)
    web = make_share(daemon, "web", {"dave": "rw", "carol": "rw"}, webdav=True)
    web_files = populate(web, 2, per_folder=12)
    for share in ("office", "web"):
        r = daemon.api.post(f"/shares/{share}/snapshots", json={})
        assert r.status_code == 201, r.text
    time.sleep(1.1)  # the attack starts after the snapshot's second
    return {"top": top, "files": files, "web": web, "web_files": web_files}


def test_canaries_are_placed_first_and_are_plain_documents(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    top = world["top"]
    names = os.listdir(top)  # btrfs's order: the order of creation
    assert names[:2] == [CANARY, "zzz-Speicher-Canary - do not change.txt"], names
    with zipfile.ZipFile(top / CANARY) as z:
        assert b"ransomware" in z.read("word/document.xml")
    with smb_user(daemon, "alice") as alice:
        assert CANARY in alice.listdir("office")  # hidden from nobody
    policy = daemon.cli("ransomware", "policy", "office", "--json")
    assert json.loads(policy.stdout)["renames"] == 10


def test_an_smb_attack_is_stopped_and_every_file_comes_back(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    top: Path = world["top"]
    with smb_user(daemon, "bob") as bob:  # a colleague works on
        bob.write("office", "hr/plan.txt", b"bob's plan, before")
    with smb_user(daemon, "alice") as alice:
        started = time.monotonic()
        encrypted = smb_attack(alice, "office", "projects")  # no canary on its way
        seconds = time.monotonic() - started
    print(f"subfolder attack: {len(encrypted)} files encrypted in {seconds:.2f} s before cut off")
    assert 10 <= len(encrypted) <= 40, encrypted  # found at the 10th, cut off soon after
    assert len(encrypted) < len([n for n in world["files"] if n.startswith("projects/")])
    found = incidents(daemon)
    assert len(found) == 1, found
    incident = found[0]
    assert (incident["user"], incident["address"], incident["protocol"]) == (
        "alice",
        "127.0.0.1",
        "smb",
    )
    assert incident["signal"] in ("overwrites", "renames") and incident["state"] == "open"
    assert incident["user_disabled"] is True
    assert set(incident["snapshots"]) == {"office"}  # alice may write only there
    assert any("files to restore are in snapshot" in line for line in incident["response"])
    # cut off: a new SMB login and a WebDAV request of alice are refused
    with (
        smb_user(daemon, "alice") as again,
        pytest.raises(Exception, match=r"(?i)c0000072|c000006d|logon|disabled"),
    ):
        again.listdir("office")
    dav = httpx.get(f"{daemon.url}/dav/office/", auth=("alice", password("alice")), timeout=30)
    assert dav.status_code == 401
    # the critical alert, naming the user, the client and the incident
    events = daemon.api.get("/events", params={"kind": "ransomware.detected"}).json()
    assert events and events[0]["level"] == "critical", events
    assert "alice" in events[0]["message"] and "127.0.0.1" in events[0]["message"]
    active = daemon.api.get("/alerts/active").json()
    assert any(a["kind"] == "ransomware.detected" for a in active), active
    assert open_incidents(daemon) == 1  # what Prometheus sees
    # the incident snapshot is locked
    snap = incident["snapshots"]["office"]
    info = daemon.api.get(f"/shares/office/snapshots/{snap}").json()
    assert info["locked_until"] is not None
    # bob goes on working after the attack: his changes stay
    with smb_user(daemon, "bob") as bob:
        bob.write("office", "hr/plan.txt", b"bob's plan, after")
        bob.write("office", "hr/new.txt", b"bob's new file")
    result = daemon.cli("ransomware", "resolve", str(incident["id"]), "--restore", "--json")
    restored = json.loads(result.stdout)
    assert restored["restored_at"] is not None and restored["state"] == "open"
    now = tree(top)
    expected = dict(world["files"]) | {
        "hr/plan.txt": b"bob's plan, after",
        "hr/new.txt": b"bob's new file",
    }
    assert now.keys() == expected.keys(), sorted(set(now) ^ set(expected))
    assert [n for n in now if now[n] != expected[n]] == []
    assert (top / CANARY).is_file()
    # released: alice logs in again
    daemon.cli("ransomware", "resolve", str(incident["id"]), "--release")
    with smb_user(daemon, "alice") as alice:
        assert "sales" in alice.listdir("office")
    active = daemon.api.get("/alerts/active").json()
    assert not any(a["kind"] == "ransomware.detected" for a in active), active
    assert open_incidents(daemon) == 0
    twice = daemon.cli("ransomware", "resolve", str(incident["id"]), "--release", check=False)
    assert twice.returncode == 2 and "resolved already" in twice.stderr


def test_an_attack_meets_a_canary_first(daemon: Daemon, world: dict[str, Any]) -> None:
    before = {i["id"] for i in incidents(daemon, timeout=0)}
    with smb_user(daemon, "carol") as carol:
        encrypted = smb_attack(carol, "office")  # from the top: the canary comes first
    print(f"attack from the top: {len(encrypted)} files encrypted before cut off")
    assert len(encrypted) <= 15, encrypted
    found = [i for i in incidents(daemon) if i["id"] not in before]
    assert len(found) == 1 and found[0]["signal"] == "canary", found
    assert found[0]["paths"] == ["/" + CANARY]
    daemon.cli("ransomware", "resolve", str(found[0]["id"]), "--restore", "--release")
    assert tree(world["top"]).keys() >= world["files"].keys()
    assert all(tree(world["top"])[n] == data for n, data in world["files"].items())


def office_day(client: SmbUser, rng: random.Random) -> None:
    """Saving documents as Word does, unzipping an archive, a compile, copying photos."""
    for i in range(25):  # Word: new temp, original to a backup name, temp to the original
        doc, tmp, backup = (
            f"docs/brief-{i % 4}.docx",
            f"docs/~WRD{i:04d}.tmp",
            f"docs/~WRL{i:04d}.tmp",
        )
        if i < 4:
            client.write("office", doc, document(rng, 5000))
            continue
        client.write("office", tmp, document(rng, 5000 + i))
        client.rename("office", doc, backup)
        client.rename("office", tmp, doc)
        client.remove("office", backup)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(60):
            z.writestr(f"bilder/img-{i}.png", os.urandom(rng.randint(3000, 20000)))
            z.writestr(f"texte/seite-{i}.txt", words(rng, 2000))
    with zipfile.ZipFile(archive) as z:  # unzipped onto the share
        for name in z.namelist():
            client.write("office", f"unzipped/{name}", z.read(name))
    for rounds in range(2):  # a compile, and a second one overwriting the objects
        for i in range(40):
            obj = f"build/m{i}.o"
            client.write("office", obj + ".tmp", b"\x7fELF" + words(rng, 3000 + rounds))
            if rounds:
                client.remove("office", obj)
            client.rename("office", obj + ".tmp", obj)
    for i in range(40):
        client.write("office", f"fotos/IMG_{i:04d}.JPG", os.urandom(rng.randint(20000, 90000)))


def test_an_office_day_raises_nothing(daemon: Daemon, world: dict[str, Any]) -> None:
    before = len(incidents(daemon, timeout=0))
    rng = random.Random(7)  # noqa: S311 - test data
    with smb_user(daemon, "bob") as bob:
        for folder in ("docs", "unzipped", "unzipped/bilder", "unzipped/texte", "build", "fotos"):
            bob.mkdir("office", folder)
        office_day(bob, rng)
    daemon.api.get("/audit", params={"user": "bob", "limit": 1})  # waits for the records
    time.sleep(2)  # the detector's queue drained
    assert len(incidents(daemon, timeout=0)) == before
    assert daemon.api.get("/users/bob").json()["enabled"] is True


def test_a_webdav_attack_is_stopped_and_restored(daemon: Daemon, world: dict[str, Any]) -> None:
    """With the share's policy making it read-only on an incident: nobody writes there until
    the incident is released."""
    daemon.cli("ransomware", "policy", "web", "--read-only")
    before = {i["id"] for i in incidents(daemon, timeout=0)}
    base = f"{daemon.url}/dav/web"
    encrypted = []
    with httpx.Client(auth=("dave", password("dave")), timeout=30) as dav:
        for name in sorted(n for n in world["web_files"] if n.startswith("projects/")):
            got = dav.get(f"{base}/{name}")
            if got.status_code != 200:
                break
            put = dav.put(f"{base}/{name}", content=encrypt(got.content))
            moved = dav.request(
                "MOVE", f"{base}/{name}", headers={"Destination": f"{base}/{name}.locked"}
            )
            if put.status_code >= 300 or moved.status_code >= 300:
                break
            encrypted.append(name)
    print(f"WebDAV attack: {len(encrypted)} files encrypted before cut off")
    assert 10 <= len(encrypted) <= 30, encrypted
    found = [i for i in incidents(daemon) if i["id"] not in before]
    assert len(found) == 1 and found[0]["protocol"] == "webdav", found
    assert found[0]["read_only"] == ["web"]
    assert daemon.api.get("/shares/web").json()["read_only"] is True
    carol = httpx.Client(auth=("carol", password("carol")), timeout=30)
    assert carol.put(f"{base}/carol.txt", content=b"x").status_code == 403
    daemon.cli("ransomware", "resolve", str(found[0]["id"]), "--restore")
    assert tree(world["web"]) == world["web_files"]
    daemon.cli("ransomware", "resolve", str(found[0]["id"]), "--release")
    assert daemon.api.get("/shares/web").json()["read_only"] is False
    assert carol.put(f"{base}/carol.txt", content=b"x").status_code == 201
    carol.close()


def test_an_sftp_attack_is_stopped_and_restored(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    """OpenSSH's sftp in batch mode uploads an encrypted copy over each file of a folder and
    renames it, until the server ends its session (sftp -b stops at the first failure)."""
    before = {i["id"] for i in incidents(daemon, timeout=0)}
    names = sorted(n for n in world["files"] if n.startswith("hr/") and n.endswith(".txt"))
    commands = []
    for i, name in enumerate(names):
        local = tmp_path / f"{i}.enc"
        local.write_bytes(encrypt(world["files"][name]))
        commands += [f"put {local} /office/{name}", f"rename /office/{name} /office/{name}.locked"]
    result = run_sftp(daemon, "erin", *commands)
    assert result.returncode != 0, result.stdout  # it did not get to the end
    locked = sorted(p.name for p in (world["top"] / "hr").glob("*.locked"))
    print(f"SFTP attack: {len(locked)} files encrypted before cut off")
    assert 10 <= len(locked) < len(names), locked
    found = [i for i in incidents(daemon) if i["id"] not in before]
    assert len(found) == 1 and found[0]["protocol"] == "sftp", found
    assert run_sftp(daemon, "erin", "ls /office").returncode != 0  # no new session either
    daemon.cli("ransomware", "resolve", str(found[0]["id"]), "--restore", "--release")
    now = tree(world["top"])
    assert all(now[n] == world["files"][n] for n in names)
    assert not list((world["top"] / "hr").glob("*.locked"))
    assert run_sftp(daemon, "erin", "ls /office").returncode == 0


def test_bad_input_gets_one_clear_line(daemon: Daemon, world: dict[str, Any]) -> None:
    missing = daemon.cli("ransomware", "resolve", "999", "--restore", check=False)
    assert missing.returncode == 2 and "no ransomware incident 999" in missing.stderr
    neither = daemon.cli("ransomware", "resolve", "1", check=False)
    assert neither.returncode == 2 and "--restore" in neither.stderr
    bad = daemon.cli("ransomware", "policy", "office", "--renames", "1", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    r = daemon.api.patch("/ransomware/shares/nope", json={"renames": 20})
    assert r.status_code == 404
    changed = daemon.cli("ransomware", "policy", "office", "--no-canary", "--json")
    assert json.loads(changed.stdout)["canary"] is False
    assert not (world["top"] / CANARY).exists()  # taken out with the setting
    daemon.cli("ransomware", "policy", "office", "--canary")


def test_a_response_cut_short_by_kill_9_is_finished_at_the_next_start(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    """Last in the module: it restarts the daemon."""
    before = {i["id"] for i in incidents(daemon, timeout=0)}
    daemon.stop()
    daemon.env["SPEICHER_CRASH_POINT"] = "ransomware.recorded"
    try:
        daemon.start()
        base = f"{daemon.url}/dav/web"
        # ten: the tenth trips the signal and the daemon dies; an eleventh could be in flight
        # and lost with the audit log's last half second (docs/ransomware.md)
        names = sorted(n for n in world["web_files"] if n.startswith(("sales/", "hr/")))[:10]
        with httpx.Client(auth=("dave", password("dave")), timeout=30) as dav:
            for name in names:  # renamed only: the rename burst is enough
                moved = {"Destination": f"{base}/{name}.locked"}
                with contextlib.suppress(httpx.HTTPError):
                    dav.request("MOVE", f"{base}/{name}", headers=moved)
        assert daemon.proc is not None
        daemon.proc.wait(60)
        assert daemon.proc.returncode == -9
    finally:
        daemon.env.pop("SPEICHER_CRASH_POINT", None)
    daemon.start()
    found = [i for i in incidents(daemon) if i["id"] not in before]
    assert len(found) == 1 and found[0]["user_disabled"] is True, found
    assert "web" in found[0]["snapshots"]
    assert daemon.api.get("/users/dave").json()["enabled"] is False
    daemon.cli("ransomware", "resolve", str(found[0]["id"]), "--restore", "--release")
    assert tree(world["web"]) == world["web_files"] | {"carol.txt": b"x"}


@pytest.fixture(autouse=True)
def _no_leftover_sessions() -> Iterator[None]:
    yield
    smbclient.reset_connection_cache(fail_on_error=False)
