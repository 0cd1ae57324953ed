"""A bucket's objects are its share's files, whichever protocol wrote them: a file written
over SMB (smbclient) or SFTP (OpenSSH sftp) is an object over S3 (boto3) with its size, bytes
and MD5 ETag; an object put over S3 (in one PUT or in parts) is a file with the same bytes over
SMB and SFTP; a file changed over SMB gets a new ETag; and a locked object (GOVERNANCE
retention a day ahead, or a legal hold) survives every delete, overwrite and rename that SMB,
WebDAV (httpx) and SFTP try. One daemon and world for the module."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dav_helpers import dav
from sftp_helpers import run_sftp, temp_files
from smb_helpers import run_smbclient
from test_s3_basics import collect_clients, md5_etag, s3_client, s3_keys
from test_s3_object_lock import _immutable, _until

from speicher_testing import Daemon
from world import grant, make_pool, make_share, make_user

pytestmark = pytest.mark.system

SIZE = 1_000_003  # no block size divides it
MiB = 1024 * 1024
PROTOCOLS: dict[str, Any] = {"smb": {"enabled": True}, "webdav": True, "sftp": True}


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """Pool ``tank``; alice (rw on ``mixed``, a bucket offered over every protocol) and boss
    (an admin, who makes the locked buckets); an S3 key for each."""
    collect_clients()
    make_pool(daemon)
    make_user(daemon, "alice")
    make_user(daemon, "boss", admin=True, file_access=True)
    mixed = make_share(daemon, "mixed", {"alice": "rw"}, s3=True, **PROTOCOLS)
    return {"mixed": mixed, "keys": s3_keys(daemon, "alice", "boss")}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    with s3_client(daemon, world["keys"]["alice"]) as s3:
        yield s3


@pytest.fixture
def admin(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    with s3_client(daemon, world["keys"]["boss"]) as s3:
        yield s3


def smb(daemon: Daemon, share: str, *commands: str) -> str:
    """smbclient as alice; the commands must succeed. Returns the output."""
    out = run_smbclient(daemon, share, *commands, user="alice")
    assert out.returncode == 0, out.stdout
    assert "NT_STATUS_" not in out.stdout, out.stdout
    return out.stdout


def sftp(daemon: Daemon, *commands: str) -> str:
    """OpenSSH's sftp as alice; the commands must succeed. Returns the output."""
    out = run_sftp(daemon, "alice", *commands)
    assert out.returncode == 0, out.stdout
    return out.stdout


def test_files_written_over_smb_and_sftp_are_objects(
    daemon: Daemon, world: dict[str, Any], alice: Any, tmp_path: Path
) -> None:
    written = {"smb": os.urandom(SIZE), "sftp": os.urandom(SIZE)}
    for protocol, data in written.items():
        (tmp_path / protocol).write_bytes(data)
    smb(daemon, "mixed", "mkdir in", f'put "{tmp_path / "smb"}" "in/by-smb.bin"')
    sftp(daemon, f'put "{tmp_path / "sftp"}" "/mixed/in/by-sftp.bin"')
    for protocol, data in written.items():
        key = f"in/by-{protocol}.bin"
        head = alice.head_object(Bucket="mixed", Key=key)
        assert head["ContentLength"] == SIZE and head["ETag"] == md5_etag(data), protocol
        got = alice.get_object(Bucket="mixed", Key=key)
        assert got["ETag"] == md5_etag(data), protocol
        assert got["Body"].read() == data, protocol
    listed = alice.list_objects_v2(Bucket="mixed", Prefix="in/")
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed["Contents"]] == [
        ("in/by-sftp.bin", SIZE, md5_etag(written["sftp"])),
        ("in/by-smb.bin", SIZE, md5_etag(written["smb"])),
    ]


def test_objects_put_over_s3_are_files_over_smb_and_sftp(
    daemon: Daemon, world: dict[str, Any], alice: Any, tmp_path: Path
) -> None:
    single = os.urandom(SIZE)
    assert alice.put_object(Bucket="mixed", Key="out/single.bin", Body=single)["ETag"] == (
        md5_etag(single)
    )
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(12_345)]
    upload = alice.create_multipart_upload(Bucket="mixed", Key="out/multi.bin")["UploadId"]
    done = [
        {
            "PartNumber": number,
            "ETag": alice.upload_part(
                Bucket="mixed", Key="out/multi.bin", UploadId=upload, PartNumber=number, Body=part
            )["ETag"],
        }
        for number, part in enumerate(parts, start=1)
    ]
    completed = alice.complete_multipart_upload(
        Bucket="mixed", Key="out/multi.bin", UploadId=upload, MultipartUpload={"Parts": done}
    )
    assert completed["ETag"].endswith('-3"'), completed["ETag"]
    objects = {"single.bin": single, "multi.bin": b"".join(parts)}
    for name, data in objects.items():
        smb(daemon, "mixed", f'get "out/{name}" "{tmp_path / ("smb-" + name)}"')
        sftp(daemon, f'get "/mixed/out/{name}" "{tmp_path / ("sftp-" + name)}"')
        assert (tmp_path / f"smb-{name}").read_bytes() == data, name
        assert (tmp_path / f"sftp-{name}").read_bytes() == data, name
    assert (world["mixed"] / "out" / "multi.bin").stat().st_size == 10 * MiB + 12_345


def test_a_file_changed_over_smb_gets_a_new_etag(
    daemon: Daemon, world: dict[str, Any], alice: Any, tmp_path: Path
) -> None:
    old, new = os.urandom(SIZE), os.urandom(SIZE)  # the same size: only the bytes differ
    alice.put_object(Bucket="mixed", Key="changed.bin", Body=old)
    assert alice.head_object(Bucket="mixed", Key="changed.bin")["ETag"] == md5_etag(old)
    (tmp_path / "new").write_bytes(new)
    smb(daemon, "mixed", f'put "{tmp_path / "new"}" "changed.bin"')
    head = alice.head_object(Bucket="mixed", Key="changed.bin")
    assert head["ETag"] == md5_etag(new) != md5_etag(old)
    got = alice.get_object(Bucket="mixed", Key="changed.bin")
    assert got["ETag"] == md5_etag(new) and got["Body"].read() == new
    listed = alice.list_objects_v2(Bucket="mixed", Prefix="changed.bin")["Contents"]
    assert [o["ETag"] for o in listed] == [md5_etag(new)]


# -- a locked object against the other protocols ------------------------------------------------

LOCKS = ("governance", "legal-hold")


@pytest.fixture(scope="module")
def vault(daemon: Daemon, world: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A bucket with Object Lock, made over S3 by the admin, then offered over SMB, WebDAV and
    SFTP with alice rw. Deleted at the end, which the share service refuses while any version
    is locked: each test lifts its lock when it is done."""
    with s3_client(daemon, world["keys"]["boss"]) as s3:
        s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
        r = daemon.api.patch("/shares/vault", json=PROTOCOLS)
        assert r.status_code == 200, r.text
        grant(daemon, "vault", "alice", "rw")
        yield {"path": Path(daemon.api.get("/shares/vault").json()["path"])}
        s3.delete_bucket(Bucket="vault")


@pytest.fixture(params=LOCKS)
def locked(
    request: pytest.FixtureRequest, vault: dict[str, Any], alice: Any, admin: Any
) -> Iterator[dict[str, Any]]:
    """An object alice put (in a folder) with GOVERNANCE retention a day ahead, or with a legal
    hold. Its lock is lifted afterwards as test_s3_object_lock does it (the admin's governance
    bypass; the hold turned off), so no immutable file and no undeletable share is left
    behind."""
    key, data = f"{request.param}/locked.bin", os.urandom(SIZE)
    lock: dict[str, Any] = (
        {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": _until(86_400)}
        if request.param == "governance"
        else {"ObjectLockLegalHoldStatus": "ON"}
    )
    put = alice.put_object(Bucket="vault", Key=key, Body=data, **lock)
    version = put["VersionId"]
    path: Path = vault["path"] / key
    assert _immutable(path)
    try:
        yield {
            "lock": request.param,
            "key": key,
            "data": data,
            "version": version,
            "etag": put["ETag"],
            "path": path,
        }
    finally:
        if request.param == "legal-hold":
            admin.put_object_legal_hold(
                Bucket="vault", Key=key, VersionId=version, LegalHold={"Status": "OFF"}
            )
        admin.delete_object(
            Bucket="vault", Key=key, VersionId=version, BypassGovernanceRetention=True
        )
        assert not path.exists()
        assert admin.list_object_versions(Bucket="vault").get("Versions", []) == []


def smb_refused(daemon: Daemon, command: str) -> str:
    """An smbclient command the server must refuse; the NT status it answered."""
    out = run_smbclient(daemon, "vault", command, user="alice")
    statuses = [word for word in out.stdout.split() if word.startswith("NT_STATUS_")]
    assert statuses, f"{command}: allowed?\n{out.stdout}"
    return statuses[0]


def sftp_refused(daemon: Daemon, command: str) -> str:
    """An sftp command the server must refuse; sftp's output."""
    out = run_sftp(daemon, "alice", command)
    assert out.returncode != 0, f"{command}: allowed?\n{out.stdout}"
    return out.stdout


def test_a_locked_object_survives_every_other_protocol(
    daemon: Daemon, vault: dict[str, Any], locked: dict[str, Any], alice: Any, tmp_path: Path
) -> None:
    key, path = locked["key"], locked["path"]
    other = tmp_path / "other"
    other.write_bytes(os.urandom(SIZE))
    # SMB: the kernel's EPERM is Samba's access denied
    assert smb_refused(daemon, f'del "{key}"') == "NT_STATUS_ACCESS_DENIED"
    assert smb_refused(daemon, f'put "{other}" "{key}"') == "NT_STATUS_ACCESS_DENIED"
    assert smb_refused(daemon, f'rename "{key}" "moved.bin"') == "NT_STATUS_ACCESS_DENIED"
    # WebDAV: ShareFS's EPERM is 403 (webdav/provider.py)
    with dav(daemon, "alice") as http:
        assert http.delete(f"/vault/{key}").status_code == 403
        assert http.put(f"/vault/{key}", content=other.read_bytes()).status_code == 403
        move = http.request(
            "MOVE",
            f"/vault/{key}",
            headers={"Destination": f"{daemon.url}/dav/vault/moved.bin", "Overwrite": "T"},
        )
        assert move.status_code == 403
    # SFTP: EPERM is SSH_FX_PERMISSION_DENIED, which OpenSSH shows as "Permission denied"
    assert "Permission denied" in sftp_refused(daemon, f'rm "/vault/{key}"')
    assert "Permission denied" in sftp_refused(daemon, f'put "{other}" "/vault/{key}"')
    renamed = sftp_refused(daemon, f'rename "/vault/{key}" "/vault/moved.bin"')
    assert "Permission denied" in renamed
    # the object is as it was, still locked, and nothing was left beside it
    got = alice.get_object(Bucket="vault", Key=key, VersionId=locked["version"])
    assert got["ETag"] == locked["etag"] == md5_etag(locked["data"])
    assert got["Body"].read() == locked["data"]
    head = alice.head_object(Bucket="vault", Key=key)
    assert head["VersionId"] == locked["version"] and head["ContentLength"] == SIZE
    if locked["lock"] == "governance":
        assert head["ObjectLockMode"] == "GOVERNANCE", head
        assert head["ObjectLockRetainUntilDate"] > _until(23 * 3600), head
    else:
        assert head["ObjectLockLegalHoldStatus"] == "ON", head
    assert _immutable(path) and path.read_bytes() == locked["data"]
    listed = alice.list_objects_v2(Bucket="vault")
    assert [o["Key"] for o in listed["Contents"]] == [key]
    assert temp_files(vault["path"]) == []


def _sealed(path: Path) -> bool:
    """The folder's append-only attribute (files/seals.py), as lsattr shows it."""
    out = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True, check=True)
    return "a" in out.stdout.split()[0]


@pytest.mark.parametrize("locked", ["legal-hold"], indirect=True)
def test_the_folder_of_a_locked_object_cannot_be_renamed(
    daemon: Daemon, vault: dict[str, Any], locked: dict[str, Any], alice: Any
) -> None:
    folder = locked["key"].split("/")[0]
    try:
        assert smb_refused(daemon, f'rename "{folder}" "elsewhere"') == "NT_STATUS_ACCESS_DENIED"
        assert smb_refused(daemon, f'deltree "{folder}"') == "NT_STATUS_ACCESS_DENIED"
        with dav(daemon, "alice") as http:
            move = http.request(
                "MOVE",
                f"/vault/{folder}/",
                headers={"Destination": f"{daemon.url}/dav/vault/elsewhere/"},
            )
            assert move.status_code == 403
            gone = http.delete(f"/vault/{folder}/")
            assert gone.status_code in (403, 207) and (vault["path"] / folder).is_dir()
        assert "Permission denied" in sftp_refused(
            daemon, f'rename "/vault/{folder}" "/vault/elsewhere"'
        )
    finally:  # put it back, so the lock can be lifted
        if (vault["path"] / "elsewhere").exists():
            smb(daemon, "vault", f'rename "elsewhere" "{folder}"')
    assert alice.head_object(Bucket="vault", Key=locked["key"])["ETag"] == locked["etag"]
    listed = alice.list_objects_v2(Bucket="vault")
    assert [o["Key"] for o in listed["Contents"]] == [locked["key"]]


@pytest.mark.parametrize("locked", ["legal-hold"], indirect=True)
def test_beside_a_locked_object_s3_and_smb_still_work(
    daemon: Daemon, vault: dict[str, Any], locked: dict[str, Any], alice: Any, tmp_path: Path
) -> None:
    """A sealed folder takes new files over SMB and S3, and S3 overwrites and deletes the
    unlocked objects in it (lifting the seal for the change); SMB cannot delete them."""
    folder = locked["key"].split("/")[0]
    assert _sealed(vault["path"] / folder)
    beside = f"{folder}/beside.bin"
    first = alice.put_object(Bucket="vault", Key=beside, Body=b"one")
    second = alice.put_object(Bucket="vault", Key=beside, Body=b"two, longer")
    assert alice.get_object(Bucket="vault", Key=beside)["Body"].read() == b"two, longer"
    (tmp_path / "smb.txt").write_bytes(b"from smb")
    smb(daemon, "vault", f'put "{tmp_path / "smb.txt"}" "{folder}/smb.txt"')
    assert alice.get_object(Bucket="vault", Key=f"{folder}/smb.txt")["Body"].read() == b"from smb"
    assert smb_refused(daemon, f'del "{folder}/smb.txt"') == "NT_STATUS_ACCESS_DENIED"
    # WebDAV and SFTP add files too (an unnamed file linked in: no temp name to leave behind),
    # but replace none
    with dav(daemon, "alice") as http:
        assert http.put(f"/vault/{folder}/dav.txt", content=b"from dav").status_code == 201
        assert http.put(f"/vault/{folder}/dav.txt", content=b"again").status_code == 403
    out = run_sftp(daemon, "alice", f'put "{tmp_path / "smb.txt"}" "/vault/{folder}/sftp.txt"')
    assert out.returncode == 0, out.stdout
    replaced = sftp_refused(daemon, f'put "{tmp_path / "smb.txt"}" "/vault/{folder}/sftp.txt"')
    assert "Permission denied" in replaced
    assert (vault["path"] / folder / "dav.txt").read_bytes() == b"from dav"
    assert temp_files(vault["path"]) == []
    for added in ("dav.txt", "sftp.txt"):
        alice.delete_object(Bucket="vault", Key=f"{folder}/{added}")
    alice.delete_object(Bucket="vault", Key=f"{folder}/smb.txt")  # a delete marker
    for version in (first["VersionId"], second["VersionId"]):
        alice.delete_object(Bucket="vault", Key=beside, VersionId=version)
    for name in ("smb.txt", "dav.txt", "sftp.txt"):
        found = alice.list_object_versions(Bucket="vault", Prefix=f"{folder}/{name}")
        for v in found["Versions"]:
            alice.delete_object(Bucket="vault", Key=v["Key"], VersionId=v["VersionId"])
    for m in alice.list_object_versions(Bucket="vault").get("DeleteMarkers", []):
        alice.delete_object(Bucket="vault", Key=m["Key"], VersionId=m["VersionId"])
    listed = alice.list_objects_v2(Bucket="vault")
    assert [o["Key"] for o in listed["Contents"]] == [locked["key"]]
    assert sorted(p.name for p in (vault["path"] / folder).iterdir()) == ["locked.bin"]
    assert _sealed(vault["path"] / folder)
    assert temp_files(vault["path"]) == []


def test_a_folder_is_unsealed_when_its_last_lock_ends(
    daemon: Daemon, vault: dict[str, Any], alice: Any, admin: Any
) -> None:
    keys = ["deep/a/one.bin", "deep/a/two.bin", "deep/b/three.bin"]
    versions = {}
    for key in keys:
        put = alice.put_object(
            Bucket="vault", Key=key, Body=key.encode(), ObjectLockLegalHoldStatus="ON"
        )
        versions[key] = put["VersionId"]
    top = vault["path"]
    assert _sealed(top / "deep") and _sealed(top / "deep/a") and _sealed(top / "deep/b")

    def release(key: str) -> None:
        admin.put_object_legal_hold(
            Bucket="vault", Key=key, VersionId=versions[key], LegalHold={"Status": "OFF"}
        )

    release("deep/a/one.bin")  # deep/a still holds two.bin
    assert _sealed(top / "deep/a") and _sealed(top / "deep")
    release("deep/a/two.bin")
    assert not _sealed(top / "deep/a") and _sealed(top / "deep")  # deep still holds b
    release("deep/b/three.bin")
    assert not _sealed(top / "deep/b") and not _sealed(top / "deep")
    smb(daemon, "vault", 'rename "deep" "deeper"')  # an ordinary folder again
    smb(daemon, "vault", 'rename "deeper" "deep"')
    for key in keys:
        alice.delete_object(Bucket="vault", Key=key, VersionId=versions[key])
    assert not (top / "deep").exists()
