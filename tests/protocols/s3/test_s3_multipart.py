"""S3 multipart uploads with boto3 against a running daemon: boto3's own multipart transfers,
the low-level calls and their errors, parts copied from other objects, quota, grants, the
removal of abandoned uploads, and that completing shares the parts' extents instead of
copying them. One daemon and world for the module."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3.s3.transfer  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import pytest
from test_s3_basics import client, code

from speicher.config import Settings
from speicher.db import Database
from speicher.files import ShareFS
from speicher.protocols.s3 import multipart
from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon, size="3G")
    for user in ("alice", "rita", "olga"):
        make_user(daemon, user)
    backups = make_share(daemon, "backups", {"alice": "rw", "rita": "ro"}, s3=True)
    other = make_share(daemon, "other", {"alice": "rw"}, s3=True)
    tiny = make_share(daemon, "tiny", {"alice": "rw"}, quota="8M", s3=True)
    keys = {}
    for user in ("alice", "rita", "olga"):
        r = daemon.api.post(f"/users/{user}/s3-keys")
        assert r.status_code == 201, r.text
        keys[user] = r.json()
    return {"backups": backups, "other": other, "tiny": tiny, "keys": keys}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    yield client(daemon, world["keys"]["alice"])


def uploads_dir(share: Path) -> Path:
    return share / ".speicher" / "s3" / "uploads"


def left(share: Path) -> list[str]:
    """What is left of uploads in the share's internal storage."""
    folder = uploads_dir(share)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"'


def start(s3: Any, key: str, bucket: str = "backups", **extra: Any) -> str:
    upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    return upload_id


def put_part(s3: Any, key: str, upload_id: str, number: int, body: bytes) -> str:
    etag: str = s3.upload_part(
        Bucket="backups", Key=key, UploadId=upload_id, PartNumber=number, Body=body
    )["ETag"]
    return etag


def finish(s3: Any, key: str, upload_id: str, parts: list[tuple[int, str]]) -> Any:
    return s3.complete_multipart_upload(
        Bucket="backups",
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
    )


def test_upload_file_in_parts(
    daemon: Daemon, world: dict[str, Any], alice: Any, tmp_path: Path
) -> None:
    body = os.urandom(17 * MiB + 3)  # parts of 5 MiB and a last one that is not aligned
    source = tmp_path / "big.bin"
    source.write_bytes(body)
    config = boto3.s3.transfer.TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    alice.upload_file(
        str(source),
        "backups",
        "dumps/big.bin",
        Config=config,
        ExtraArgs={"ContentType": "application/x-dump", "Metadata": {"Origin": "nightly"}},
    )
    chunks = [body[i : i + 5 * MiB] for i in range(0, len(body), 5 * MiB)]
    assert len(chunks) == 4
    etag = multipart_etag(chunks)
    head = alice.head_object(Bucket="backups", Key="dumps/big.bin")
    assert head["ETag"] == etag and head["ContentLength"] == len(body)
    assert head["ContentType"] == "application/x-dump"  # given at Create
    assert head["Metadata"] == {"origin": "nightly"}
    listed = alice.list_objects_v2(Bucket="backups", Prefix="dumps/")["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [
        ("dumps/big.bin", etag, len(body))
    ]
    got = alice.get_object(Bucket="backups", Key="dumps/big.bin")
    assert got["ETag"] == etag and got["Body"].read() == body
    stored: Path = world["backups"] / "dumps" / "big.bin"
    assert stored.read_bytes() == body  # the object is the file
    st = stored.stat()
    assert st.st_uid == pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    assert left(world["backups"]) == []  # the parts went with the completion
    assert not list(world["backups"].rglob(".speicher-upload-*"))
    # the internal storage is root's alone
    internal = world["backups"] / ".speicher"
    assert internal.stat().st_uid == 0 and internal.stat().st_mode & 0o077 == 0
    # and no protocol shows it: not a key, not in a listing
    top = alice.list_objects_v2(Bucket="backups", Delimiter="/")
    assert ".speicher/" not in [p["Prefix"] for p in top.get("CommonPrefixes", [])]


def test_parts_listed_replaced_and_paged(world: dict[str, Any], alice: Any) -> None:
    upload_id = start(alice, "paged/obj")
    etags = {
        n: put_part(alice, "paged/obj", upload_id, n, bytes([n]) * (1000 + n)) for n in (1, 2, 3)
    }
    assert etags[2] == f'"{hashlib.md5(bytes([2]) * 1002, usedforsecurity=False).hexdigest()}"'
    newer = put_part(alice, "paged/obj", upload_id, 2, b"replaced")  # the same number again
    first = alice.list_parts(Bucket="backups", Key="paged/obj", UploadId=upload_id, MaxParts=2)
    assert first["IsTruncated"] is True and first["NextPartNumberMarker"] == 2
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in first["Parts"]] == [
        (1, etags[1], 1001),
        (2, newer, 8),
    ]
    assert first["Initiator"]["ID"] == "alice"
    rest = alice.list_parts(
        Bucket="backups", Key="paged/obj", UploadId=upload_id, PartNumberMarker=2
    )
    assert rest["IsTruncated"] is False
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.upload_part(
            Bucket="backups", Key="paged/obj", UploadId=upload_id, PartNumber=10001, Body=b"x"
        )
    assert code(exc) == ("InvalidArgument", 400)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.upload_part(
            Bucket="backups",
            Key="paged/obj",
            UploadId=upload_id,
            PartNumber=4,
            Body=b"some bytes",
            ContentMD5=base64.b64encode(
                hashlib.md5(b"other", usedforsecurity=False).digest()
            ).decode(),
        )
    assert code(exc) == ("BadDigest", 400)
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # another key's upload
        alice.list_parts(Bucket="backups", Key="paged/other", UploadId=upload_id)
    assert code(exc) == ("NoSuchUpload", 404)
    alice.abort_multipart_upload(Bucket="backups", Key="paged/obj", UploadId=upload_id)


def test_list_multipart_uploads_paged(world: dict[str, Any], alice: Any) -> None:
    made = [
        ("mu/a", start(alice, "mu/a")),
        ("mu/b", start(alice, "mu/b")),
        ("mu/c/d", start(alice, "mu/c/d")),
        ("mu/c/e", start(alice, "mu/c/e")),
    ]
    made.insert(1, ("mu/a", start(alice, "mu/a")))  # a second upload of mu/a, made later
    everything = alice.list_multipart_uploads(Bucket="backups", Prefix="mu/")
    assert [(u["Key"], u["UploadId"]) for u in everything["Uploads"]] == made
    assert everything["IsTruncated"] is False
    seen = []
    pages = alice.get_paginator("list_multipart_uploads").paginate(
        Bucket="backups", Prefix="mu/", PaginationConfig={"PageSize": 2}
    )
    for page in pages:
        assert len(page.get("Uploads", [])) <= 2
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
    assert seen == made  # the page boundary falls between the two uploads of mu/a
    folded = alice.list_multipart_uploads(Bucket="backups", Prefix="mu/", Delimiter="/")
    assert [u["Key"] for u in folded["Uploads"]] == ["mu/a", "mu/a", "mu/b"]
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["mu/c/"]
    after = alice.list_multipart_uploads(
        Bucket="backups", Prefix="mu/", KeyMarker="mu/a", UploadIdMarker=made[0][1]
    )
    assert [(u["Key"], u["UploadId"]) for u in after["Uploads"]] == made[1:]
    for key, upload_id in made:
        alice.abort_multipart_upload(Bucket="backups", Key=key, UploadId=upload_id)
    assert "Uploads" not in alice.list_multipart_uploads(Bucket="backups", Prefix="mu/")


def test_complete_refuses_what_s3_refuses(world: dict[str, Any], alice: Any) -> None:
    key = "errors/obj"
    upload_id = start(alice, key)
    one, two, three = os.urandom(5 * MiB), os.urandom(MiB), os.urandom(MiB)
    e1, e2, e3 = (
        put_part(alice, key, upload_id, n, b) for n, b in ((1, one), (2, two), (3, three))
    )
    for parts, wanted in (
        ([(1, e1), (2, '"0123456789abcdef0123456789abcdef"')], "InvalidPart"),
        ([(1, e1), (7, e2)], "InvalidPart"),  # never uploaded
        ([(2, e2), (1, e1)], "InvalidPartOrder"),
        ([(1, e1), (1, e1)], "InvalidPartOrder"),
        ([(1, e1), (2, e2), (3, e3)], "EntityTooSmall"),  # part 2 is under 5 MiB, not last
        ([], "MalformedXML"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            finish(alice, key, upload_id, parts)
        assert code(exc) == (wanted, 400), parts
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.head_object(Bucket="backups", Key=key)
    assert code(exc)[1] == 404  # no refusal made an object
    done = finish(alice, key, upload_id, [(1, e1), (3, e3)])  # parts may be left out
    assert done["ETag"] == multipart_etag([one, three])
    assert (world["backups"] / "errors" / "obj").read_bytes() == one + three
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # completed: gone
        finish(alice, key, upload_id, [(1, e1), (3, e3)])
    assert code(exc) == ("NoSuchUpload", 404)


def test_abort_removes_the_parts(world: dict[str, Any], alice: Any) -> None:
    key = "aborted/obj"
    upload_id = start(alice, key)
    etag = put_part(alice, key, upload_id, 1, os.urandom(2 * MiB))
    assert left(world["backups"]) == [upload_id]
    assert sorted(p.name for p in (uploads_dir(world["backups"]) / upload_id).iterdir()) == [
        "part-00001",
        "upload.json",
    ]
    part = uploads_dir(world["backups"]) / upload_id / "part-00001"
    assert part.stat().st_uid == 0 and part.stat().st_mode & 0o777 == 0o600
    alice.abort_multipart_upload(Bucket="backups", Key=key, UploadId=upload_id)
    assert left(world["backups"]) == []
    for call in (
        lambda: finish(alice, key, upload_id, [(1, etag)]),
        lambda: put_part(alice, key, upload_id, 2, b"late"),
        lambda: alice.list_parts(Bucket="backups", Key=key, UploadId=upload_id),
        lambda: alice.abort_multipart_upload(Bucket="backups", Key=key, UploadId=upload_id),
        lambda: alice.abort_multipart_upload(Bucket="backups", Key=key, UploadId="made-up"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert code(exc) == ("NoSuchUpload", 404)
    assert left(world["backups"]) == []
    assert not (world["backups"] / "aborted").exists()


def test_upload_part_copy(world: dict[str, Any], alice: Any) -> None:
    source = os.urandom(7 * MiB + 11)
    alice.put_object(Bucket="backups", Key="copy/source", Body=source)
    small = os.urandom(123_457)
    alice.put_object(Bucket="other", Key="elsewhere", Body=small)
    key = "copy/target"
    upload_id = start(alice, key)
    first = alice.upload_part_copy(
        Bucket="backups",
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": "backups", "Key": "copy/source"},
        CopySourceRange=f"bytes=1-{5 * MiB}",
    )["CopyPartResult"]
    wanted = source[1 : 5 * MiB + 1]
    assert first["ETag"] == f'"{hashlib.md5(wanted, usedforsecurity=False).hexdigest()}"'
    second = alice.upload_part_copy(  # another bucket, the whole object
        Bucket="backups",
        Key=key,
        UploadId=upload_id,
        PartNumber=2,
        CopySource="other/elsewhere",
        CopySourceIfMatch=f'"{hashlib.md5(small, usedforsecurity=False).hexdigest()}"',
    )["CopyPartResult"]
    for extra, wanted_code in (
        ({"CopySourceIfMatch": '"nope"'}, ("PreconditionFailed", 412)),
        ({"CopySourceIfNoneMatch": "*"}, ("PreconditionFailed", 412)),
        ({"CopySourceRange": f"bytes=0-{len(source)}"}, ("InvalidRange", 416)),
        ({"CopySourceRange": "bytes=5-1"}, ("InvalidArgument", 400)),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            alice.upload_part_copy(
                Bucket="backups",
                Key=key,
                UploadId=upload_id,
                PartNumber=3,
                CopySource="backups/copy/source",
                **extra,
            )
        assert code(exc) == wanted_code, extra
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.upload_part_copy(
            Bucket="backups", Key=key, UploadId=upload_id, PartNumber=3, CopySource="backups/no"
        )
    assert code(exc) == ("NoSuchKey", 404)
    done = finish(alice, key, upload_id, [(1, first["ETag"]), (2, second["ETag"])])
    assert done["ETag"] == multipart_etag([wanted, small])
    got = alice.get_object(Bucket="backups", Key=key)["Body"].read()
    assert got == wanted + small


def test_a_part_past_the_quota(world: dict[str, Any], alice: Any) -> None:
    upload_id = start(alice, "big", bucket="tiny")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.upload_part(
            Bucket="tiny", Key="big", UploadId=upload_id, PartNumber=1, Body=os.urandom(12 * MiB)
        )
    assert code(exc) == ("QuotaExceeded", 507)
    parts = alice.list_parts(Bucket="tiny", Key="big", UploadId=upload_id)
    assert parts.get("Parts", []) == []
    folder = uploads_dir(world["tiny"]) / upload_id
    assert sorted(p.name for p in folder.iterdir()) == ["upload.json"]  # no partial part
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.head_object(Bucket="tiny", Key="big")
    assert code(exc)[1] == 404
    alice.abort_multipart_upload(Bucket="tiny", Key="big", UploadId=upload_id)
    assert left(world["tiny"]) == []


def test_grants_decide(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    rita = client(daemon, world["keys"]["rita"])  # ro on backups
    olga = client(daemon, world["keys"]["olga"])  # nothing
    upload_id = start(alice, "granted/obj")
    etag = put_part(alice, "granted/obj", upload_id, 1, b"alice's part")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        rita.create_multipart_upload(Bucket="backups", Key="granted/rita")
    assert code(exc) == ("AccessDenied", 403)
    for call in (
        lambda: put_part(rita, "granted/obj", upload_id, 2, b"rita's"),
        lambda: finish(rita, "granted/obj", upload_id, [(1, etag)]),
        lambda: rita.abort_multipart_upload(
            Bucket="backups", Key="granted/obj", UploadId=upload_id
        ),
        lambda: rita.upload_part_copy(
            Bucket="backups",
            Key="granted/obj",
            UploadId=upload_id,
            PartNumber=2,
            CopySource="backups/copy/source",
        ),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert code(exc) == ("AccessDenied", 403)
    # reading is enough to list
    listed = rita.list_parts(Bucket="backups", Key="granted/obj", UploadId=upload_id)
    assert [p["ETag"] for p in listed["Parts"]] == [etag]
    keys = [u["Key"] for u in rita.list_multipart_uploads(Bucket="backups")["Uploads"]]
    assert keys == ["granted/obj"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        olga.list_multipart_uploads(Bucket="backups")
    assert code(exc) == ("NoSuchBucket", 404)
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # no copying out of it either
        olga.upload_part_copy(
            Bucket="backups",
            Key="granted/obj",
            UploadId=upload_id,
            PartNumber=2,
            CopySource="backups/copy/source",
        )
    assert code(exc) == ("NoSuchBucket", 404)
    alice.abort_multipart_upload(Bucket="backups", Key="granted/obj", UploadId=upload_id)


def _extents(path: Path) -> list[tuple[int, int]]:
    """The file's physical extents (first block, blocks), merged where they touch."""
    out = subprocess.run(
        ["filefrag", "-v", str(path)], capture_output=True, text=True, check=True
    ).stdout
    found = sorted(
        (int(m.group(1)), int(m.group(2)) - int(m.group(1)) + 1)
        for m in re.finditer(r"^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):", out, re.M)
    )
    merged: list[tuple[int, int]] = []
    for first, count in found:
        if merged and merged[-1][0] + merged[-1][1] == first:
            merged[-1] = (merged[-1][0], merged[-1][1] + count)
        else:
            merged.append((first, count))
    return merged


def test_completing_shares_the_parts_extents(world: dict[str, Any], alice: Any) -> None:
    """~100 MiB in 13 parts: the object's blocks are the very blocks the parts were written
    to, so completing copied nothing (copy_file_range reflinked the aligned parts)."""
    key = "large/object.bin"
    upload_id = start(alice, key)
    sizes = [8 * MiB] * 12 + [4 * MiB + 1]
    parts: list[bytes] = []
    etags = []
    for number, size in enumerate(sizes, 1):
        body = os.urandom(size)
        parts.append(body)
        etags.append((number, put_part(alice, key, upload_id, number, body)))
    folder = uploads_dir(world["backups"]) / upload_id
    blocks: list[tuple[int, int]] = []
    for number in range(1, len(sizes) + 1):
        blocks += _extents(folder / f"part-{number:05d}")
    assert blocks
    began = time.monotonic()
    done = finish(alice, key, upload_id, etags)
    took = time.monotonic() - began
    assert done["ETag"] == multipart_etag(parts)
    stored = world["backups"] / "large" / "object.bin"
    assert stored.stat().st_size == sum(sizes)
    merged: list[tuple[int, int]] = []
    for first, count in sorted(blocks):
        if merged and merged[-1][0] + merged[-1][1] == first:
            merged[-1] = (merged[-1][0], merged[-1][1] + count)
        else:
            merged.append((first, count))
    assert _extents(stored) == merged, took
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(b"".join(parts)).digest()
    assert left(world["backups"]) == []


def test_abandoned_uploads_are_removed(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    """The cleanup itself, in this process on a real ShareView of the daemon's share."""
    upload_id = start(alice, "abandoned/obj")
    put_part(alice, "abandoned/obj", upload_id, 1, b"forgotten")
    settings = Settings(
        state_dir=daemon.state_dir, mount_root=daemon.mount_root, account_prefix=daemon.prefix
    )
    db = Database(settings.db_url)
    try:
        fs = ShareFS(settings, db)
        with fs.open("alice", "backups", "s3") as view, view.internal(*multipart.UPLOADS) as up:
            assert multipart.remove_abandoned(up, 7 * 86400) == 0  # recent: kept
            later = time.time_ns() + 8 * 86400 * 10**9
            assert multipart.remove_abandoned(up, 7 * 86400, now_ns=later) == 1
    finally:
        db.close()
    assert left(world["backups"]) == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.list_parts(Bucket="backups", Key="abandoned/obj", UploadId=upload_id)
    assert code(exc) == ("NoSuchUpload", 404)


def test_abandoned_uploads_go_at_start(daemon: Daemon, world: dict[str, Any]) -> None:
    """Last in the module: restarts the daemon with s3_abandoned_upload_days 0."""
    s3 = client(daemon, world["keys"]["alice"])
    upload_id = start(s3, "restart/obj")
    put_part(s3, "restart/obj", upload_id, 1, b"left behind")
    assert left(world["backups"]) == [upload_id]
    daemon.stop()
    daemon.env["SPEICHER_S3_ABANDONED_UPLOAD_DAYS"] = "0"
    daemon.start()
    deadline = time.monotonic() + 30
    while left(world["backups"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left(world["backups"]) == []
    kinds = [e["kind"] for e in daemon.api.get("/events", params={"limit": 50}).json()]
    assert "s3.uploads_removed" in kinds


def test_get_and_head_by_part_number(alice: Any) -> None:
    """GetObject/HeadObject ?partNumber=N: the part's bytes (206, Content-Range) and the
    count of parts; a single-part object is part 1 of 1, whole."""
    key = "parts/by-number.bin"
    upload_id = start(alice, key)
    one, two = os.urandom(5 * MiB + 7), os.urandom(123_457)
    e1, e2 = put_part(alice, key, upload_id, 1, one), put_part(alice, key, upload_id, 2, two)
    etag = finish(alice, key, upload_id, [(1, e1), (2, e2)])["ETag"]
    got = alice.get_object(Bucket="backups", Key=key, PartNumber=2)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == two
    assert got["PartsCount"] == 2 and got["ETag"] == etag
    total = len(one) + len(two)
    assert got["ContentRange"] == f"bytes {len(one)}-{total - 1}/{total}"
    head = alice.head_object(Bucket="backups", Key=key, PartNumber=1)
    assert head["ContentLength"] == len(one) and head["PartsCount"] == 2
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket="backups", Key=key, PartNumber=3)
    assert code(exc) == ("InvalidPartNumber", 416)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket="backups", Key=key, PartNumber=1, Range="bytes=0-9")
    assert code(exc) == ("InvalidRequest", 400)
    alice.put_object(Bucket="backups", Key="parts/single.bin", Body=b"one piece")
    single = alice.get_object(Bucket="backups", Key="parts/single.bin", PartNumber=1)
    assert single["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert single["Body"].read() == b"one piece" and single["PartsCount"] == 1
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.head_object(Bucket="backups", Key="parts/single.bin", PartNumber=2)
    assert code(exc)[1] == 416
