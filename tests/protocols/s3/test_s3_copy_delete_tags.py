"""CopyObject, DeleteObjects, object tagging and additional checksums with boto3 (and raw
signed requests where boto3 would not send what a test needs) against a running daemon.
Every refusal is checked to leave the bucket as it was."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import pwd
import subprocess
import time
from pathlib import Path
from typing import Any

import botocore.auth  # type: ignore[import-untyped]
import botocore.awsrequest  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.credentials  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import httpx
import pytest
from test_s3_basics import client, code, md5_etag

from speicher.protocols.s3 import checksums
from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system
ClientError = botocore.exceptions.ClientError


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    for user in ("alice", "rita", "olga"):
        make_user(daemon, user)
    data = make_share(daemon, "data", {"alice": "rw", "rita": "ro"}, s3=True)
    archive = make_share(daemon, "archive", {"alice": "rw"}, s3=True)
    make_share(daemon, "private", {"olga": "rw"}, s3=True)
    keys = {}
    for user in ("alice", "rita", "olga"):
        r = daemon.api.post(f"/users/{user}/s3-keys")
        assert r.status_code == 201, r.text
        keys[user] = r.json()
    return {"data": data, "archive": archive, "keys": keys}


@pytest.fixture(scope="module")
def alice(daemon: Daemon, world: dict[str, Any]) -> Any:
    return client(daemon, world["keys"]["alice"])


def signed(
    daemon: Daemon,
    key: dict[str, str],
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    trailer: str | None = None,
    unsigned: bool = False,
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a request signed by botocore's signer (``trailer``: as
    ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``, what SDKs send over HTTPS; ``unsigned``: with
    ``UNSIGNED-PAYLOAD``), without Content-Length (the sender sets it)."""
    url = f"http://127.0.0.1:{daemon.s3_port}{path}"
    request = botocore.awsrequest.AWSRequest(
        method=method, url=url, data=body, headers=dict(headers or {})
    )
    if unsigned:
        config = botocore.config.Config(s3={"payload_signing_enabled": False})
        request.context["client_config"] = config
    if trailer is not None:
        request.context["checksum"] = {
            "request_algorithm": {"in": "trailer", "algorithm": trailer, "name": trailer}
        }
    credentials = botocore.credentials.Credentials(key["access_key"], key["secret"])
    botocore.auth.S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    return url, {k: v for k, v in request.headers.items() if k.lower() != "content-length"}


def raw(
    daemon: Daemon,
    key: dict[str, str],
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    trailer: str | None = None,
) -> httpx.Response:
    """A request signed by botocore's signer and sent as it is."""
    url, sent = signed(daemon, key, method, path, body, headers, trailer)
    return httpx.request(method, url, headers=sent, content=body, timeout=60)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(folder.rglob("*"))
    }


def meta_xattr(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(os.getxattr(path, "user.speicher.meta.s3"))
    return loaded


# -- CopyObject -----------------------------------------------------------------------------


def test_copy_within_and_across_buckets(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    body = os.urandom(300_001)
    alice.put_object(
        Bucket="data",
        Key="src/report.bin",
        Body=body,
        ContentType="application/x-report",
        Metadata={"team": "finance"},
        Tagging="class=secret&year=2026",
    )
    got = alice.copy_object(
        Bucket="data", Key="copies/report.bin", CopySource="data/src/report.bin"
    )
    assert got["CopyObjectResult"]["ETag"] == md5_etag(body)
    copied = world["data"] / "copies" / "report.bin"
    assert copied.read_bytes() == body
    assert copied.stat().st_uid == pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    head = alice.head_object(Bucket="data", Key="copies/report.bin")
    assert head["ContentType"] == "application/x-report" and head["Metadata"] == {"team": "finance"}
    assert head["ETag"] == md5_etag(body)
    tags = alice.get_object_tagging(Bucket="data", Key="copies/report.bin")["TagSet"]
    assert tags == [{"Key": "class", "Value": "secret"}, {"Key": "year", "Value": "2026"}]
    # across buckets, with a URL-encoded source, metadata and tags replaced
    alice.put_object(Bucket="data", Key="src/a b+ä?.txt", Body=b"odd name")
    alice.copy_object(
        Bucket="archive",
        Key="kept/odd.txt",
        CopySource={"Bucket": "data", "Key": "src/a b+ä?.txt"},
        MetadataDirective="REPLACE",
        ContentType="text/x-odd",
        Metadata={"new": "yes"},
        TaggingDirective="REPLACE",
        Tagging="fresh=1",
    )
    assert (world["archive"] / "kept" / "odd.txt").read_bytes() == b"odd name"
    head = alice.head_object(Bucket="archive", Key="kept/odd.txt")
    assert head["ContentType"] == "text/x-odd" and head["Metadata"] == {"new": "yes"}
    assert head["TagCount"] == 1
    assert not list(world["archive"].rglob(".speicher-upload-*"))


def test_a_copy_is_a_reflink(world: dict[str, Any], alice: Any) -> None:
    body = os.urandom(4 * 1024 * 1024)
    alice.put_object(Bucket="data", Key="big/source.bin", Body=body)
    os.sync()  # extents are shared once they are on the disk
    alice.copy_object(Bucket="archive", Key="big/copy.bin", CopySource="data/big/source.bin")
    copied = world["archive"] / "big" / "copy.bin"
    assert copied.read_bytes() == body
    os.sync()
    extents = subprocess.run(
        ["filefrag", "-v", str(copied)], capture_output=True, text=True, check=True
    ).stdout
    assert "shared" in extents, extents  # the same blocks as the source: no data copied


def test_copy_onto_itself_needs_replace(world: dict[str, Any], alice: Any) -> None:
    alice.put_object(Bucket="data", Key="self.txt", Body=b"me", Metadata={"v": "1"})
    before = snapshot(world["data"])
    with pytest.raises(ClientError) as exc:
        alice.copy_object(Bucket="data", Key="self.txt", CopySource="data/self.txt")
    assert code(exc) == ("InvalidRequest", 400)
    assert "copy an object to itself" in exc.value.response["Error"]["Message"]
    assert snapshot(world["data"]) == before
    alice.copy_object(
        Bucket="data",
        Key="self.txt",
        CopySource="data/self.txt",
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
    )
    assert alice.head_object(Bucket="data", Key="self.txt")["Metadata"] == {"v": "2"}
    assert (world["data"] / "self.txt").read_bytes() == b"me"


def test_copy_conditions(world: dict[str, Any], alice: Any) -> None:
    alice.put_object(Bucket="data", Key="cond.txt", Body=b"conditional")
    etag = md5_etag(b"conditional")
    past = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    failing: list[dict[str, Any]] = [
        {"CopySourceIfMatch": '"0000"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": future},
        {"CopySourceIfUnmodifiedSince": past},
        {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": past},
    ]
    for conditions in failing:
        with pytest.raises(ClientError) as exc:
            alice.copy_object(
                Bucket="data", Key="cond-copy.txt", CopySource="data/cond.txt", **conditions
            )
        assert code(exc) == ("PreconditionFailed", 412), conditions
        assert not (world["data"] / "cond-copy.txt").exists()
    passing: list[dict[str, Any]] = [
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},  # if-match wins
        {"CopySourceIfNoneMatch": '"0000"', "CopySourceIfModifiedSince": past},
        {"CopySourceIfUnmodifiedSince": future},
    ]
    for conditions in passing:
        got = alice.copy_object(
            Bucket="data", Key="cond-copy.txt", CopySource="data/cond.txt", **conditions
        )
        assert got["CopyObjectResult"]["ETag"] == etag
        (world["data"] / "cond-copy.txt").unlink()


def test_copy_refusals(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    alice.put_object(Bucket="data", Key="keep.txt", Body=b"keep")
    before = snapshot(world["data"]), snapshot(world["archive"])
    for source, wanted in (
        ("data/missing.txt", ("NoSuchKey", 404)),
        ("private/anything", ("NoSuchBucket", 404)),  # alice has no grant there
        ("nothere/x", ("NoSuchBucket", 404)),
        ("data/keep.txt?versionId=abc", ("InvalidArgument", 400)),
        ("data", ("InvalidArgument", 400)),
        ("data/a/../keep.txt", ("InvalidArgument", 400)),
    ):
        with pytest.raises(ClientError) as exc:
            alice.copy_object(Bucket="archive", Key="target.txt", CopySource=source)
        assert code(exc) == wanted, source
    with pytest.raises(ClientError) as exc:
        alice.copy_object(
            Bucket="archive",
            Key="target.txt",
            CopySource="data/keep.txt",
            MetadataDirective="MERGE",
        )
    assert code(exc) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        alice.copy_object(
            Bucket="archive", Key="target.txt", CopySource="data/keep.txt", Tagging="a=1&a=2"
        )
    assert code(exc) == ("InvalidArgument", 400)
    rita = client(daemon, world["keys"]["rita"])  # ro on data
    with pytest.raises(ClientError) as exc:
        rita.copy_object(Bucket="data", Key="rita.txt", CopySource="data/keep.txt")
    assert code(exc) == ("AccessDenied", 403)
    olga = client(daemon, world["keys"]["olga"])  # rw on private, nothing on data
    with pytest.raises(ClientError) as exc:
        olga.copy_object(Bucket="private", Key="stolen.txt", CopySource="data/keep.txt")
    assert code(exc) == ("NoSuchBucket", 404)
    assert (snapshot(world["data"]), snapshot(world["archive"])) == before
    assert not list(Path(world["data"]).parent.glob("private/stolen.txt"))


def test_copy_of_a_multipart_object_gets_the_md5_of_its_bytes(
    world: dict[str, Any], alice: Any
) -> None:
    body = os.urandom(70_000)
    alice.put_object(Bucket="data", Key="multi.bin", Body=body)
    path = world["data"] / "multi.bin"
    meta = meta_xattr(path)
    meta["etag"] = "0123456789abcdef0123456789abcdef-2"  # as a completed multipart upload
    os.setxattr(path, "user.speicher.meta.s3", json.dumps(meta).encode())
    assert alice.head_object(Bucket="data", Key="multi.bin")["ETag"].endswith('-2"')
    got = alice.copy_object(Bucket="data", Key="multi-copy.bin", CopySource="data/multi.bin")
    assert got["CopyObjectResult"]["ETag"] == md5_etag(body)
    assert alice.head_object(Bucket="data", Key="multi-copy.bin")["ETag"] == md5_etag(body)


# -- DeleteObjects --------------------------------------------------------------------------


def test_delete_objects(world: dict[str, Any], alice: Any) -> None:
    for key in ("del/a", "del/b", "del/sub/c", "del/keep"):
        alice.put_object(Bucket="data", Key=key, Body=b"x")
    got = alice.delete_objects(
        Bucket="data",
        Delete={
            "Objects": [
                {"Key": "del/a"},
                {"Key": "del/sub/c"},
                {"Key": "del/never-was"},
                {"Key": "del/../x"},
                {"Key": "del/b", "VersionId": "null"},
            ]
        },
    )
    assert sorted(d["Key"] for d in got["Deleted"]) == [
        "del/a",
        "del/b",
        "del/never-was",
        "del/sub/c",
    ]
    assert [(e["Key"], e["Code"]) for e in got["Errors"]] == [("del/../x", "InvalidArgument")]
    folder = world["data"] / "del"
    assert sorted(p.name for p in folder.iterdir()) == ["keep"]  # sub/ went with its object
    alice.put_object(Bucket="data", Key="del/q", Body=b"x")
    quiet = alice.delete_objects(
        Bucket="data", Delete={"Objects": [{"Key": "del/q"}], "Quiet": True}
    )
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert not (folder / "q").exists()


def test_delete_objects_by_a_reader_deletes_nothing(
    daemon: Daemon, world: dict[str, Any], alice: Any
) -> None:
    alice.put_object(Bucket="data", Key="del/keep", Body=b"x")
    rita = client(daemon, world["keys"]["rita"])
    got = rita.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "del/keep"}]})
    assert [(e["Key"], e["Code"]) for e in got["Errors"]] == [("del/keep", "AccessDenied")]
    assert (world["data"] / "del" / "keep").exists()


def _delete_body(keys: list[str]) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f"<Delete>{objects}</Delete>".encode()


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def test_delete_objects_refusals_change_nothing(
    daemon: Daemon, world: dict[str, Any], alice: Any
) -> None:
    for i in range(3):
        alice.put_object(Bucket="data", Key=f"many/{i}", Body=b"x")
    before = snapshot(world["data"])
    with pytest.raises(ClientError) as exc:
        alice.delete_objects(
            Bucket="data", Delete={"Objects": [{"Key": f"many/{i}"} for i in range(1001)]}
        )
    assert code(exc) == ("MalformedXML", 400)
    key = world["keys"]["alice"]
    huge = _delete_body([f"many/{i}" for i in range(10_000)])
    started = time.monotonic()
    r = raw(daemon, key, "POST", "/data?delete", huge, {"Content-MD5": _md5(huge)})
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
    assert time.monotonic() - started < 5
    small = _delete_body(["many/0"])
    r = raw(daemon, key, "POST", "/data?delete", small)  # neither Content-MD5 nor a checksum
    assert r.status_code == 400 and "<Code>InvalidRequest</Code>" in r.text
    assert "Content-MD5" in r.text
    r = raw(daemon, key, "POST", "/data?delete", small, {"Content-MD5": _md5(b"other")})
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
    bad_crc = {"x-amz-checksum-crc32": checksums.of("crc32", b"other")}
    r = raw(daemon, key, "POST", "/data?delete", small, bad_crc)
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
    for broken in (
        b"<Delete><Object><Key>many/0</Key></Object>",
        b"not xml at all",
        b'<!DOCTYPE x [<!ENTITY e "many/0">]><Delete><Object><Key>&e;</Key></Object></Delete>',
        b"<Delete></Delete>",
    ):
        r = raw(daemon, key, "POST", "/data?delete", broken, {"Content-MD5": _md5(broken)})
        assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text, broken
    r = raw(daemon, key, "POST", "/nothere?delete", small, {"Content-MD5": _md5(small)})
    assert r.status_code == 404 and "<Code>NoSuchBucket</Code>" in r.text
    assert snapshot(world["data"]) == before
    good = raw(daemon, key, "POST", "/data?delete", small, {"Content-MD5": _md5(small)})
    assert good.status_code == 200 and "<Deleted><Key>many/0</Key></Deleted>" in good.text


# -- tagging --------------------------------------------------------------------------------


def test_object_tagging(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    alice.put_object(Bucket="data", Key="tagged.txt", Body=b"t", Tagging="a=1&b=%C3%A4")
    got = alice.get_object(Bucket="data", Key="tagged.txt")
    assert got["TagCount"] == 2
    tags = alice.get_object_tagging(Bucket="data", Key="tagged.txt")["TagSet"]
    assert tags == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "ä"}]
    new = [{"Key": "project", "Value": "x" * 256}, {"Key": "k" * 128, "Value": ""}]
    alice.put_object_tagging(Bucket="data", Key="tagged.txt", Tagging={"TagSet": new})
    assert alice.get_object_tagging(Bucket="data", Key="tagged.txt")["TagSet"] == new
    etag = alice.head_object(Bucket="data", Key="tagged.txt")["ETag"]
    assert etag == md5_etag(b"t")  # tags are no change of the bytes
    for bad in (
        [{"Key": f"k{i}", "Value": "v"} for i in range(11)],
        [{"Key": "k", "Value": "v" * 257}],
        [{"Key": "k" * 129, "Value": "v"}],
        [{"Key": "aws:thing", "Value": "v"}],
        [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}],
    ):
        with pytest.raises(ClientError) as exc:
            alice.put_object_tagging(Bucket="data", Key="tagged.txt", Tagging={"TagSet": bad})
        assert code(exc) == ("InvalidTag", 400)
        assert alice.get_object_tagging(Bucket="data", Key="tagged.txt")["TagSet"] == new
    with pytest.raises(ClientError) as exc:
        alice.put_object(
            Bucket="data",
            Key="untagged.txt",
            Body=b"u",
            Tagging="&".join(f"k{i}=v" for i in range(11)),
        )
    assert code(exc) == ("InvalidTag", 400)
    assert not (world["data"] / "untagged.txt").exists()
    rita = client(daemon, world["keys"]["rita"])
    assert rita.get_object_tagging(Bucket="data", Key="tagged.txt")["TagSet"] == new
    with pytest.raises(ClientError) as exc:
        rita.put_object_tagging(Bucket="data", Key="tagged.txt", Tagging={"TagSet": []})
    assert code(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        rita.delete_object_tagging(Bucket="data", Key="tagged.txt")
    assert code(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        alice.get_object_tagging(Bucket="data", Key="no-such.txt")
    assert code(exc) == ("NoSuchKey", 404)
    key = world["keys"]["alice"]
    broken = b"<Tagging><TagSet><Tag><Key>a</Key></Tag>"
    r = raw(daemon, key, "PUT", "/data/tagged.txt?tagging", broken, {"Content-MD5": _md5(broken)})
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
    alice.delete_object_tagging(Bucket="data", Key="tagged.txt")
    assert alice.get_object_tagging(Bucket="data", Key="tagged.txt")["TagSet"] == []
    assert "TagCount" not in alice.head_object(Bucket="data", Key="tagged.txt")
    assert (world["data"] / "tagged.txt").read_bytes() == b"t"


def test_tags_of_a_file_written_before_tagging(world: dict[str, Any], alice: Any) -> None:
    path = world["data"] / "old-record.txt"
    path.write_bytes(b"old")
    st = path.stat()
    old = {
        "etag": hashlib.md5(b"old", usedforsecurity=False).hexdigest(),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "headers": {"content-type": "text/x-old"},
        "user": {"m": "1"},
    }
    os.setxattr(path, "user.speicher.meta.s3", json.dumps(old).encode())
    head = alice.head_object(Bucket="data", Key="old-record.txt")
    assert head["ContentType"] == "text/x-old" and "TagCount" not in head
    alice.put_object_tagging(
        Bucket="data", Key="old-record.txt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    head = alice.head_object(Bucket="data", Key="old-record.txt")
    assert head["ContentType"] == "text/x-old" and head["Metadata"] == {"m": "1"}
    assert head["TagCount"] == 1


# -- checksums ------------------------------------------------------------------------------

ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksums_stored_and_returned(algorithm: str, alice: Any) -> None:
    body = os.urandom(200_000)
    key = f"sums/{algorithm}.bin"
    field = f"Checksum{algorithm}"
    expected = checksums.of(algorithm.lower(), body)
    put = alice.put_object(Bucket="data", Key=key, Body=body, ChecksumAlgorithm=algorithm)
    assert put[field] == expected
    head = alice.head_object(Bucket="data", Key=key, ChecksumMode="ENABLED")
    assert head[field] == expected
    got = alice.get_object(Bucket="data", Key=key, ChecksumMode="ENABLED")
    assert got[field] == expected
    assert got["Body"].read() == body  # botocore checks the body against it
    part = alice.get_object(Bucket="data", Key=key, ChecksumMode="ENABLED", Range="bytes=0-9")
    assert field not in part and part["Body"].read() == body[:10]
    copied = alice.copy_object(Bucket="data", Key=key + ".copy", CopySource=f"data/{key}")
    assert copied["CopyObjectResult"][field] == expected
    # and one asked for in the copy, computed from the bytes
    other = "SHA256" if algorithm != "SHA256" else "CRC32C"
    again = alice.copy_object(
        Bucket="data", Key=key + ".copy2", CopySource=f"data/{key}", ChecksumAlgorithm=other
    )
    assert again["CopyObjectResult"][f"Checksum{other}"] == checksums.of(other.lower(), body)


def test_a_wrong_checksum_is_bad_digest_and_writes_nothing(
    world: dict[str, Any], alice: Any
) -> None:
    alice.put_object(Bucket="data", Key="sums/kept.txt", Body=b"the old bytes")
    for algorithm in ALGORITHMS:
        wrong = checksums.of(algorithm.lower(), b"something else")
        with pytest.raises(ClientError) as exc:
            alice.put_object(
                Bucket="data",
                Key="sums/kept.txt",
                Body=b"new bytes",
                **{f"Checksum{algorithm}": wrong},
            )
        assert code(exc) == ("BadDigest", 400), algorithm
        with pytest.raises(ClientError) as exc:
            alice.put_object(
                Bucket="data", Key="sums/never.txt", Body=b"x", **{f"Checksum{algorithm}": wrong}
            )
        assert code(exc) == ("BadDigest", 400)
    assert (world["data"] / "sums" / "kept.txt").read_bytes() == b"the old bytes"
    assert not (world["data"] / "sums" / "never.txt").exists()
    assert not list(world["data"].rglob(".speicher-upload-*"))


def _chunked_with_trailer(data: bytes, name: str, value: str) -> bytes:
    return b"%x\r\n%s\r\n0\r\n%s:%s\r\n\r\n" % (len(data), data, name.encode(), value.encode())


def test_checksums_in_a_trailer(daemon: Daemon, world: dict[str, Any], alice: Any) -> None:
    key = world["keys"]["alice"]
    data = os.urandom(50_000)
    for algorithm in ("crc32c", "crc64nvme", "sha1"):
        name = f"x-amz-checksum-{algorithm}"
        headers = {
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": name,
            "x-amz-sdk-checksum-algorithm": algorithm.upper(),
        }
        good = _chunked_with_trailer(data, name, checksums.of(algorithm, data))
        r = raw(daemon, key, "PUT", f"/data/trailer/{algorithm}", good, headers, trailer=name)
        assert r.status_code == 200, r.text
        head = alice.head_object(Bucket="data", Key=f"trailer/{algorithm}", ChecksumMode="ENABLED")
        assert head[f"Checksum{algorithm.upper()}"] == checksums.of(algorithm, data)
        bad = _chunked_with_trailer(data, name, checksums.of(algorithm, b"tampered"))
        r = raw(daemon, key, "PUT", f"/data/trailer/bad-{algorithm}", bad, headers, trailer=name)
        assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
        assert not (world["data"] / "trailer" / f"bad-{algorithm}").exists()
    assert (world["data"] / "trailer" / "sha1").read_bytes() == data


def test_checksum_header_refusals(daemon: Daemon, world: dict[str, Any]) -> None:
    key = world["keys"]["alice"]
    before = snapshot(world["data"])
    for headers in (
        {"x-amz-checksum-crc32": "not base64"},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAA=="},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "SHA256"},
        {"x-amz-sdk-checksum-algorithm": "MD5"},
    ):
        r = raw(daemon, key, "PUT", "/data/refused.txt", b"x", headers)
        assert r.status_code == 400 and "<Code>InvalidRequest</Code>" in r.text, headers
    assert snapshot(world["data"]) == before
