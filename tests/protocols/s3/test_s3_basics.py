"""The S3 endpoint with boto3 against a running daemon: buckets are shares with S3 on,
objects their files, every request signed with a user's access key. One daemon and world for
the module."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import pwd
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import defusedxml.ElementTree
import httpx
import pytest

from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system


def client(daemon: Daemon, key: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{daemon.s3_port}",
        region_name="us-east-1",
        aws_access_key_id=key["access_key"],
        aws_secret_access_key=key["secret"],
        config=botocore.config.Config(
            signature_version="s3v4",  # boto3 presigns with SigV2 otherwise, which S3 refuses
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    error = exc.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def s3_keys(daemon: Daemon, *users: str) -> dict[str, dict[str, str]]:
    """A new S3 key (``access_key``, ``secret``) for each of ``users``, by user."""
    keys = {}
    for user in users:
        r = daemon.api.post(f"/users/{user}/s3-keys")
        assert r.status_code == 201, r.text
        keys[user] = r.json()
    return keys


def collect_clients() -> None:
    """Close now, quietly, the clients earlier modules left to the collector (their
    ResourceWarnings would fail a later test under ``-W error``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@contextlib.contextmanager
def s3_client(daemon: Daemon, key: dict[str, str]) -> Iterator[Any]:
    """A boto3 client with ``key`` (see :func:`client`), closed afterwards."""
    s3 = client(daemon, key)
    try:
        yield s3
    finally:
        s3.close()


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    for user in ("alice", "rita", "olga"):
        make_user(daemon, user)
    backups = make_share(daemon, "backups", {"alice": "rw", "rita": "ro"}, s3=True)
    make_share(daemon, "private", {"olga": "rw"}, s3=True)
    make_share(daemon, "nos3", {"alice": "rw"})  # S3 off
    return {"backups": backups, "keys": s3_keys(daemon, "alice", "rita", "olga")}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    yield client(daemon, world["keys"]["alice"])


def test_list_and_head_buckets(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    names = [b["Name"] for b in alice.list_buckets()["Buckets"]]
    assert names == ["backups"]  # not "private" (no grant), not "nos3" (S3 off)
    alice.head_bucket(Bucket="backups")
    for bucket in ("private", "nos3", "nothere"):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            alice.head_bucket(Bucket=bucket)
        assert code(exc) == ("404", 404)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            alice.list_objects_v2(Bucket=bucket)
        assert code(exc) == ("NoSuchBucket", 404)
    assert alice.get_bucket_location(Bucket="backups")["LocationConstraint"] is None


def test_put_get_head_delete(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    body = os.urandom(1_000_003)
    put = alice.put_object(
        Bucket="backups",
        Key="reports/2026/q4.bin",
        Body=body,
        ContentType="application/x-report",
        Metadata={"Team": "finance"},
    )
    etag = md5_etag(body)
    assert put["ETag"] == etag
    stored = world["backups"] / "reports" / "2026" / "q4.bin"
    assert stored.read_bytes() == body  # the object is the file
    assert stored.stat().st_uid == pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    got = alice.get_object(Bucket="backups", Key="reports/2026/q4.bin")
    assert got["Body"].read() == body and got["ETag"] == etag
    assert got["ContentType"] == "application/x-report" and got["Metadata"] == {"team": "finance"}
    head = alice.head_object(Bucket="backups", Key="reports/2026/q4.bin")
    assert head["ContentLength"] == len(body) and head["ETag"] == etag
    part = alice.get_object(Bucket="backups", Key="reports/2026/q4.bin", Range="bytes=10-19")
    assert part["Body"].read() == body[10:20] and part["ContentRange"] == f"bytes 10-19/{len(body)}"
    tail = alice.get_object(Bucket="backups", Key="reports/2026/q4.bin", Range="bytes=-7")
    assert tail["Body"].read() == body[-7:]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket="backups", Key="reports/2026/q4.bin", Range=f"bytes={len(body)}-")
    assert code(exc) == ("InvalidRange", 416)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket="backups", Key="reports/2026/q4.bin", IfNoneMatch=etag)
    assert code(exc)[1] == 304
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket="backups", Key="reports/2026/q4.bin", IfMatch='"nope"')
    assert code(exc) == ("PreconditionFailed", 412)
    alice.delete_object(Bucket="backups", Key="reports/2026/q4.bin")
    assert not stored.exists()
    alice.delete_object(Bucket="backups", Key="reports/2026/q4.bin")  # again: 204 as S3 does
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket="backups", Key="reports/2026/q4.bin")
    assert code(exc) == ("NoSuchKey", 404)
    assert not (world["backups"] / "reports").exists()  # the prefix went with its last object
    assert not [p for p in world["backups"].rglob(".speicher-upload-*")]


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (it is on disk: S3 synced it), and make sure
    they are gone: a read that must not wait finds nothing."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with pytest.raises(BlockingIOError):
            os.preadv(fd, [bytearray(4096)], 0, os.RWF_NOWAIT)
    finally:
        os.close(fd)


def test_objects_read_from_the_disk_and_from_the_page_cache(
    world: dict[str, Any], alice: Any
) -> None:
    """A GET serves an object from the page cache in the event loop and one that is only on
    the disk from a worker thread: both give the same bytes, whole and in ranges."""
    bodies = {"cold/small.bin": os.urandom(4097), "cold/large.bin": os.urandom(2_621_443)}
    for key, body in bodies.items():
        alice.put_object(Bucket="backups", Key=key, Body=body)
    for key, body in bodies.items():
        evict(world["backups"] / key)
        for _cold_then_hot in range(2):
            got = alice.get_object(Bucket="backups", Key=key)
            assert got["Body"].read() == body and got["ETag"] == md5_etag(body)
        evict(world["backups"] / key)
        part = alice.get_object(Bucket="backups", Key=key, Range="bytes=4000-")
        assert part["Body"].read() == body[4000:]
        alice.delete_object(Bucket="backups", Key=key)


def test_a_file_from_another_protocol_is_an_object(world: dict[str, Any], alice: Any) -> None:
    folder: Path = world["backups"] / "from-smb"
    folder.mkdir()
    (folder / "memo.txt").write_bytes(b"written by SMB\n")
    got = alice.get_object(Bucket="backups", Key="from-smb/memo.txt")
    assert got["Body"].read() == b"written by SMB\n"
    assert got["ETag"] == md5_etag(b"written by SMB\n")
    assert got["ContentType"] == "text/plain"
    (folder / "memo.txt").write_bytes(b"changed over SMB\n")  # the stored ETag is stale now
    head = alice.head_object(Bucket="backups", Key="from-smb/memo.txt")
    assert head["ETag"] == md5_etag(b"changed over SMB\n")


def test_listing_order_prefixes_and_pages(alice: Any) -> None:
    keys = ["a-c", "a/b", "a/c/d", "a0", "b", "ä", "z/", "z/y"]
    for key in keys:
        alice.put_object(
            Bucket="backups", Key=f"list/{key}", Body=b"" if key.endswith("/") else b"x"
        )
    listed = alice.list_objects_v2(Bucket="backups", Prefix="list/")
    got = [o["Key"].removeprefix("list/") for o in listed["Contents"]]
    # UTF-8 binary order ('-' < '/' < '0'); the folder object z/ is not listed once z/y exists
    assert got == sorted([k for k in keys if k != "z/"], key=lambda k: k.encode())
    top = alice.list_objects_v2(Bucket="backups", Prefix="list/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["list/a/", "list/z/"]
    assert [o["Key"] for o in top["Contents"]] == ["list/a-c", "list/a0", "list/b", "list/ä"]
    seen: list[str] = []
    pages = alice.get_paginator("list_objects_v2").paginate(
        Bucket="backups", Prefix="list/", PaginationConfig={"PageSize": 2}
    )
    for page in pages:
        assert page["KeyCount"] <= 2
        seen += [o["Key"].removeprefix("list/") for o in page.get("Contents", [])]
    assert seen == got
    v1 = alice.list_objects(Bucket="backups", Prefix="list/a", Delimiter="/")
    assert [o["Key"] for o in v1["Contents"]] == ["list/a-c", "list/a0"]
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == ["list/a/"]
    after = alice.list_objects_v2(Bucket="backups", Prefix="list/", StartAfter="list/a/b")
    assert after["Contents"][0]["Key"] == "list/a/c/d"


def test_keys_that_cannot_be_files(alice: Any) -> None:
    for key in ("a//b", "./x", "x/../y", "x/.", ".speicher/x", "n" * 256):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            alice.put_object(Bucket="backups", Key=key, Body=b"x")
        assert code(exc)[1] == 400, key
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.put_object(Bucket="backups", Key="k" * 1025, Body=b"x")
    assert code(exc) == ("KeyTooLongError", 400)
    alice.put_object(Bucket="backups", Key="clash", Body=b"a file")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.put_object(Bucket="backups", Key="clash/inner", Body=b"x")
    assert code(exc)[1] in (400, 409)
    assert alice.get_object(Bucket="backups", Key="clash")["Body"].read() == b"a file"


def test_grants_decide(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    alice.put_object(Bucket="backups", Key="shared.txt", Body=b"for everyone")
    rita = client(daemon, world["keys"]["rita"])  # ro
    assert rita.get_object(Bucket="backups", Key="shared.txt")["Body"].read() == b"for everyone"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        rita.put_object(Bucket="backups", Key="shared.txt", Body=b"mine")
    assert code(exc) == ("AccessDenied", 403)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        rita.delete_object(Bucket="backups", Key="shared.txt")
    assert code(exc) == ("AccessDenied", 403)
    assert (world["backups"] / "shared.txt").read_bytes() == b"for everyone"
    olga = client(daemon, world["keys"]["olga"])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        olga.get_object(Bucket="backups", Key="shared.txt")
    assert code(exc) == ("NoSuchBucket", 404)


def test_bad_signatures_and_unknown_keys(daemon: Daemon, world: dict[str, Any]) -> None:
    wrong = client(daemon, {**world["keys"]["alice"], "secret": "x" * 40})
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        wrong.list_buckets()
    assert code(exc) == ("SignatureDoesNotMatch", 403)
    unknown = client(daemon, {"access_key": "SPKAAAAAAAAAAAAAAAAA", "secret": "x" * 40})
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        unknown.list_buckets()
    assert code(exc) == ("InvalidAccessKeyId", 403)
    r = httpx.get(f"http://127.0.0.1:{daemon.s3_port}/backups/shared.txt")
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text
    assert r.headers.get_list("server") == ["Speicher"]
    assert "<RequestId>" in r.text and "Traceback" not in r.text


def test_presigned_urls(daemon: Daemon, alice: Any) -> None:
    alice.put_object(Bucket="backups", Key="share me.txt", Body=b"presigned")
    url = alice.generate_presigned_url(
        "get_object", Params={"Bucket": "backups", "Key": "share me.txt"}, ExpiresIn=60
    )
    fetched = httpx.get(url)
    assert fetched.content == b"presigned"
    assert len(fetched.headers["x-amz-request-id"]) == 16  # on successes too, as AWS
    assert httpx.get(url.replace("share%20me", "share%20you")).status_code == 403
    v2 = "?AWSAccessKeyId=A&Signature=B&Expires=9"
    r = httpx.get(f"http://127.0.0.1:{daemon.s3_port}/backups/x{v2}")
    assert r.status_code == 400 and "<Code>InvalidRequest</Code>" in r.text  # SigV2: refused


def test_a_disabled_user_and_a_deleted_key_sign_nothing(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    rita = client(daemon, world["keys"]["rita"])
    rita.list_buckets()
    assert daemon.api.patch("/users/rita", json={"enabled": False}).status_code == 200
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        rita.list_buckets()
    assert code(exc) == ("InvalidAccessKeyId", 403)
    assert daemon.api.patch("/users/rita", json={"enabled": True}).status_code == 200
    rita.list_buckets()
    key = world["keys"]["rita"]["access_key"]
    assert daemon.api.delete(f"/users/rita/s3-keys/{key}").status_code == 204
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        rita.list_buckets()
    assert code(exc) == ("InvalidAccessKeyId", 403)


def test_create_and_delete_buckets(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.create_bucket(Bucket="alices")
    assert code(exc) == ("AccessDenied", 403)  # only admins, unless the admin allows users
    make_user(daemon, "root2", admin=True, file_access=True)
    r = daemon.api.post("/users/root2/s3-keys")
    assert r.status_code == 201, r.text
    admin = client(daemon, r.json())
    admin.create_bucket(Bucket="made-over-s3")
    share = daemon.api.get("/shares/made-over-s3").json()
    assert share["s3"] is True and share["pool"] == "tank"
    assert [g["name"] for g in share["grants"]] == ["root2"]
    assert "made-over-s3" in [b["Name"] for b in admin.list_buckets()["Buckets"]]
    for name, wanted in (
        ("made-over-s3", "BucketAlreadyOwnedByYou"),
        ("backups", "BucketAlreadyExists"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            admin.create_bucket(Bucket=name)
        assert code(exc) == (wanted, 409)
    for name in ("ab", "under_score", "double--dash", "xn-punycode"):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            admin.create_bucket(Bucket=name)
        assert code(exc) == ("InvalidBucketName", 400), name
        assert daemon.api.get(f"/shares/{name}").status_code == 404
    admin.put_object(Bucket="made-over-s3", Key="keep/me", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.delete_bucket(Bucket="made-over-s3")
    assert code(exc) == ("BucketNotEmpty", 409)
    admin.delete_object(Bucket="made-over-s3", Key="keep/me")
    admin.delete_bucket(Bucket="made-over-s3")
    assert daemon.api.get("/shares/made-over-s3").status_code == 404
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        admin.delete_bucket(Bucket="made-over-s3")
    assert code(exc) == ("NoSuchBucket", 404)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.delete_bucket(Bucket="backups")  # rw, but not an admin
    assert code(exc) == ("AccessDenied", 403)


def test_veeam_sosapi(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    folder = ".system-d26a9498-cb7c-4a87-a44a-8ae204f5ba6c"
    system = defusedxml.ElementTree.fromstring(
        alice.get_object(Bucket="backups", Key=f"{folder}/system.xml")["Body"].read()
    )
    assert system.tag == "SystemInfo"
    assert system.findtext("ProtocolCapabilities/CapacityInfo") == "true"
    assert system.findtext("SystemRecommendations/KbBlockSize") == "4096"
    r = daemon.api.patch("/shares/backups", json={"quota": "1G"})
    assert r.status_code == 200, r.text
    try:
        raw = alice.get_object(Bucket="backups", Key=f"{folder}/capacity.xml")["Body"].read()
        capacity = defusedxml.ElementTree.fromstring(raw)
        total, free, used = (
            int(capacity.findtext(n) or -1) for n in ("Capacity", "Available", "Used")
        )
        assert total == 1024**3 and free + used == total and 0 <= free <= total
        head = alice.head_object(Bucket="backups", Key=f"{folder}/capacity.xml")
        assert head["ContentLength"] > 0 and head["ContentType"] == "application/xml"
    finally:
        assert daemon.api.patch("/shares/backups", json={"quota": "none"}).status_code == 200
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.put_object(Bucket="backups", Key=f"{folder}/capacity.xml", Body=b"<x/>")
    assert code(exc) == ("AccessDenied", 403)
    assert not (world["backups"] / folder).exists()


def test_bucket_cors_and_preflight(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    url = f"http://127.0.0.1:{daemon.s3_port}/backups/page.html"
    asked = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
    r = httpx.options(url, headers=asked)
    assert r.status_code == 403 and "<Code>AccessForbidden</Code>" in r.text  # no rules yet
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_bucket_cors(Bucket="backups")
    assert code(exc) == ("NoSuchCORSConfiguration", 404)
    rules = {
        "CORSRules": [
            {
                "AllowedOrigins": ["https://*.example"],
                "AllowedMethods": ["GET", "PUT"],
                "AllowedHeaders": ["content-type", "x-amz-*"],
                "ExposeHeaders": ["ETag"],
                "MaxAgeSeconds": 600,
            }
        ]
    }
    alice.put_bucket_cors(Bucket="backups", CORSConfiguration=rules)
    got = alice.get_bucket_cors(Bucket="backups")["CORSRules"]
    assert got[0]["AllowedOrigins"] == ["https://*.example"] and got[0]["MaxAgeSeconds"] == 600
    r = httpx.options(
        url, headers={**asked, "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["access-control-max-age"] == "600"
    assert "PUT" in r.headers["access-control-allow-methods"]
    for refused in (
        {"Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"},
        {"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"},
        {**asked, "Access-Control-Request-Headers": "x-not-allowed"},
    ):
        assert httpx.options(url, headers=refused).status_code == 403, refused
    alice.put_object(Bucket="backups", Key="page.html", Body=b"<p>hi</p>")
    events = alice.meta.events
    seen: dict[str, str] = {}

    def origin(request: Any, **_: Any) -> None:
        request.headers["Origin"] = "https://app.example"

    def keep(http_response: Any, **_: Any) -> None:
        seen.update({k.lower(): v for k, v in http_response.headers.items()})

    events.register("before-sign.s3.GetObject", origin)
    events.register("after-call.s3.GetObject", lambda http_response, **_: keep(http_response))
    alice.get_object(Bucket="backups", Key="page.html")
    assert seen["access-control-allow-origin"] == "https://app.example"
    assert seen["access-control-expose-headers"] == "ETag"
    fresh = daemon.api.post("/users/rita/s3-keys")  # her first key was deleted above
    assert fresh.status_code == 201, fresh.text
    rita = client(daemon, fresh.json())  # ro: may read the rules, not change them
    assert rita.get_bucket_cors(Bucket="backups")["CORSRules"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        rita.delete_bucket_cors(Bucket="backups")
    assert code(exc) == ("AccessDenied", 403)
    alice.delete_bucket_cors(Bucket="backups")
    assert httpx.options(url, headers=asked).status_code == 403


def test_bucket_tagging(alice: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_bucket_tagging(Bucket="backups")
    assert code(exc) == ("NoSuchTagSet", 404)
    tags = [{"Key": "department", "Value": "Finanzen"}, {"Key": "cost-center", "Value": "4711"}]
    alice.put_bucket_tagging(Bucket="backups", Tagging={"TagSet": tags})
    got = alice.get_bucket_tagging(Bucket="backups")["TagSet"]
    assert sorted(t["Key"] for t in got) == ["cost-center", "department"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.put_bucket_tagging(
            Bucket="backups", Tagging={"TagSet": [{"Key": "k" * 129, "Value": "v"}]}
        )
    assert code(exc) == ("InvalidTag", 400)
    assert len(alice.get_bucket_tagging(Bucket="backups")["TagSet"]) == 2  # unchanged
    alice.delete_bucket_tagging(Bucket="backups")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_bucket_tagging(Bucket="backups")
    assert code(exc) == ("NoSuchTagSet", 404)


def test_settings_a_bucket_does_not_have(alice: Any) -> None:
    assert "Status" not in alice.get_bucket_versioning(Bucket="backups")  # never versioned
    acl = alice.get_bucket_acl(Bucket="backups")
    assert acl["Owner"]["ID"] == "alice"
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    for call, wanted in (
        (alice.get_object_lock_configuration, "ObjectLockConfigurationNotFoundError"),
        (alice.get_bucket_policy, "NoSuchBucketPolicy"),
        (alice.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
        (alice.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError"),
        (alice.get_public_access_block, "NoSuchPublicAccessBlockConfiguration"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(Bucket="backups")
        assert code(exc) == (wanted, 404)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_bucket_versioning(Bucket="private")  # another's bucket: nothing about it
    assert code(exc) == ("NoSuchBucket", 404)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.put_bucket_encryption(
            Bucket="backups",
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
    assert code(exc) == ("NotImplemented", 501)  # setting one (versioning: test_s3_versioning)
