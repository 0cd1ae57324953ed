"""S3 versioning with boto3 against a running daemon: the file in the share is always the
current version, older versions and delete markers live in the share's internal storage.
One daemon and world for the module."""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped]
import pytest
from test_s3_basics import client, code, md5_etag

from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    with warnings.catch_warnings():  # clients earlier modules left to the collector
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    make_pool(daemon)
    for user in ("alice", "rita"):
        make_user(daemon, user)
    share = make_share(daemon, "vers", {"alice": "rw", "rita": "ro"}, s3=True)
    keys = {}
    for user in ("alice", "rita"):
        r = daemon.api.post(f"/users/{user}/s3-keys")
        assert r.status_code == 201, r.text
        keys[user] = r.json()
    return {"share": share, "keys": keys}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    s3 = client(daemon, world["keys"]["alice"])
    yield s3
    s3.close()


@pytest.fixture
def versioned(alice: Any) -> str:
    alice.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    return "vers"


def _versions(s3: Any, bucket: str, **kw: Any) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) in the listing's order."""
    got = s3.list_object_versions(Bucket=bucket, **kw)
    out = [(v["Key"], v["VersionId"], v["IsLatest"], False) for v in got.get("Versions", [])]
    out += [(m["Key"], m["VersionId"], m["IsLatest"], True) for m in got.get("DeleteMarkers", [])]
    return out


def test_versioning_state_starts_unset_then_enabled_and_suspended(
    alice: Any, daemon: Daemon, world: dict[str, Any]
) -> None:
    before = alice.get_bucket_versioning(Bucket="vers")
    assert "Status" not in before  # never set: no Status
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.put_bucket_versioning(
            Bucket="vers",
            VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
            MFA="123 456",
        )
    assert code(exc) == ("NotImplemented", 501)
    rita = client(daemon, world["keys"]["rita"])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        rita.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    assert code(exc) == ("AccessDenied", 403)
    rita.close()
    alice.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Suspended"})
    assert alice.get_bucket_versioning(Bucket="vers")["Status"] == "Suspended"
    alice.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    assert alice.get_bucket_versioning(Bucket="vers")["Status"] == "Enabled"


def test_versions_newest_first_and_the_file_is_the_current_one(
    alice: Any, versioned: str, world: dict[str, Any]
) -> None:
    share: Path = world["share"]
    bodies = [os.urandom(1000 + i) for i in range(3)]
    ids = []
    for body in bodies:
        put = alice.put_object(Bucket=versioned, Key="docs/report.bin", Body=body)
        ids.append(put["VersionId"])
        assert put["ETag"] == md5_etag(body)
        assert (share / "docs" / "report.bin").read_bytes() == body  # the current version
        assert (share / "docs" / "report.bin").stat().st_nlink == 1
    assert len(set(ids)) == 3 and ids == sorted(ids)  # unique, sortable by time
    listed = _versions(alice, versioned, Prefix="docs/")
    assert listed == [
        ("docs/report.bin", ids[2], True, False),
        ("docs/report.bin", ids[1], False, False),
        ("docs/report.bin", ids[0], False, False),
    ]
    for vid, body in zip(ids, bodies, strict=True):
        got = alice.get_object(Bucket=versioned, Key="docs/report.bin", VersionId=vid)
        assert got["Body"].read() == body and got["VersionId"] == vid
        head = alice.head_object(Bucket=versioned, Key="docs/report.bin", VersionId=vid)
        assert head["ContentLength"] == len(body) and head["ETag"] == md5_etag(body)
    assert alice.get_object(Bucket=versioned, Key="docs/report.bin")["VersionId"] == ids[2]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket=versioned, Key="docs/report.bin", VersionId="0" * 16 + "A" * 16)
    assert code(exc) == ("NoSuchVersion", 404)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket=versioned, Key="docs/report.bin", VersionId="nonsense")
    assert code(exc) == ("InvalidArgument", 400)
    # the versions are invisible in the share and in ListObjects
    assert sorted(p.name for p in (share / "docs").iterdir()) == ["report.bin"]
    keys = [o["Key"] for o in alice.list_objects_v2(Bucket=versioned, Prefix="docs/")["Contents"]]
    assert keys == ["docs/report.bin"]

    # deleting the current version promotes the one below it into the share
    alice.delete_object(Bucket=versioned, Key="docs/report.bin", VersionId=ids[2])
    assert (share / "docs" / "report.bin").read_bytes() == bodies[1]
    assert [v[1] for v in _versions(alice, versioned, Prefix="docs/")] == [ids[1], ids[0]]
    # deleting an old version removes it for good
    alice.delete_object(Bucket=versioned, Key="docs/report.bin", VersionId=ids[0])
    assert _versions(alice, versioned, Prefix="docs/") == [("docs/report.bin", ids[1], True, False)]


def test_delete_markers_hide_the_key_and_deleting_the_marker_brings_it_back(
    alice: Any, versioned: str, world: dict[str, Any]
) -> None:
    share: Path = world["share"]
    body = b"keep me"
    vid = alice.put_object(Bucket=versioned, Key="m/a.txt", Body=body)["VersionId"]
    gone = alice.delete_object(Bucket=versioned, Key="m/a.txt")
    assert gone["DeleteMarker"] is True
    marker = gone["VersionId"]
    assert marker != vid
    assert not (share / "m").exists()  # the key left the share (and its empty folder too)
    assert "Contents" not in alice.list_objects_v2(Bucket=versioned, Prefix="m/")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket=versioned, Key="m/a.txt")
    assert code(exc) == ("NoSuchKey", 404)
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.get_object(Bucket=versioned, Key="m/a.txt", VersionId=marker)
    assert code(exc) == ("MethodNotAllowed", 405)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.head_object(Bucket=versioned, Key="m/a.txt", VersionId=marker)
    assert code(exc)[1] == 405
    assert _versions(alice, versioned, Prefix="m/") == [
        ("m/a.txt", vid, False, False),
        ("m/a.txt", marker, True, True),
    ]
    # the old version stays readable by id
    got = alice.get_object(Bucket=versioned, Key="m/a.txt", VersionId=vid)
    assert got["Body"].read() == body
    # deleting the marker brings the key back, as the file in the share
    removed = alice.delete_object(Bucket=versioned, Key="m/a.txt", VersionId=marker)
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker
    assert (share / "m" / "a.txt").read_bytes() == body
    assert alice.get_object(Bucket=versioned, Key="m/a.txt")["VersionId"] == vid


def test_list_versions_paging_delimiter_and_markers(alice: Any, versioned: str) -> None:
    ids: dict[str, list[str]] = {}
    for key in ("p/b", "p/a", "p/c/d", "p/c/e"):
        for n in range(2):
            put = alice.put_object(Bucket=versioned, Key=key, Body=f"{key}{n}".encode())
            ids.setdefault(key, []).insert(0, put["VersionId"])
    alice.delete_object(Bucket=versioned, Key="p/b")  # only old versions and a marker now
    got = alice.list_object_versions(Bucket=versioned, Prefix="p/", Delimiter="/")
    assert [p["Prefix"] for p in got["CommonPrefixes"]] == ["p/c/"]
    assert [(v["Key"], v["VersionId"]) for v in got["Versions"]] == [
        ("p/a", ids["p/a"][0]),
        ("p/a", ids["p/a"][1]),
        ("p/b", ids["p/b"][0]),
        ("p/b", ids["p/b"][1]),
    ]
    assert [m["Key"] for m in got["DeleteMarkers"]] == ["p/b"]
    # paging: three at a time, with key and version-id markers, gives everything once
    seen: list[tuple[str, str]] = []
    kw: dict[str, Any] = {"Bucket": versioned, "Prefix": "p/", "MaxKeys": 3}
    while True:
        page = alice.list_object_versions(**kw)
        entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
        assert len(entries) <= 3
        seen += [(e["Key"], e["VersionId"]) for e in entries]
        if not page["IsTruncated"]:
            break
        kw["KeyMarker"] = page["NextKeyMarker"]
        kw["VersionIdMarker"] = page["NextVersionIdMarker"]
    assert len(seen) == len(set(seen)) == 9
    assert [k for k, _v in seen] == sorted(k for k, _v in seen)


def test_delete_objects_with_version_ids(alice: Any, versioned: str) -> None:
    first = alice.put_object(Bucket=versioned, Key="d/x", Body=b"1")["VersionId"]
    second = alice.put_object(Bucket=versioned, Key="d/x", Body=b"2")["VersionId"]
    result = alice.delete_objects(
        Bucket=versioned,
        Delete={"Objects": [{"Key": "d/x", "VersionId": first}, {"Key": "d/y"}]},
    )
    deleted = {d["Key"]: d for d in result["Deleted"]}
    assert deleted["d/x"]["VersionId"] == first
    assert deleted["d/y"]["DeleteMarker"] is True and deleted["d/y"]["DeleteMarkerVersionId"]
    assert "Errors" not in result
    assert [v[1] for v in _versions(alice, versioned, Prefix="d/x")] == [second]


def test_copy_from_an_old_version(alice: Any, versioned: str, world: dict[str, Any]) -> None:
    old = alice.put_object(Bucket=versioned, Key="c/src", Body=b"old bytes")["VersionId"]
    alice.put_object(Bucket=versioned, Key="c/src", Body=b"new bytes")
    copied = alice.copy_object(
        Bucket=versioned,
        Key="c/dst",
        CopySource={"Bucket": versioned, "Key": "c/src", "VersionId": old},
    )
    assert copied["CopySourceVersionId"] == old and copied["VersionId"]
    assert (world["share"] / "c" / "dst").read_bytes() == b"old bytes"


def test_upload_part_copy_from_an_old_version(alice: Any, versioned: str) -> None:
    old = alice.put_object(Bucket=versioned, Key="pc/src", Body=b"old part bytes")["VersionId"]
    alice.put_object(Bucket=versioned, Key="pc/src", Body=b"the new bytes")
    up = alice.create_multipart_upload(Bucket=versioned, Key="pc/dst")["UploadId"]
    part = alice.upload_part_copy(
        Bucket=versioned,
        Key="pc/dst",
        UploadId=up,
        PartNumber=1,
        CopySource={"Bucket": versioned, "Key": "pc/src", "VersionId": old},
        CopySourceRange="bytes=4-7",
    )
    assert part["CopySourceVersionId"] == old
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.upload_part_copy(
            Bucket=versioned,
            Key="pc/dst",
            UploadId=up,
            PartNumber=2,
            CopySource={"Bucket": versioned, "Key": "pc/src", "VersionId": "0" * 32},
        )
    assert code(exc)[1] == 404
    alice.complete_multipart_upload(
        Bucket=versioned,
        Key="pc/dst",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )
    assert alice.get_object(Bucket=versioned, Key="pc/dst")["Body"].read() == b"part"


def test_multipart_completion_keeps_the_old_version(
    alice: Any, versioned: str, world: dict[str, Any]
) -> None:
    old = alice.put_object(Bucket=versioned, Key="mp/obj", Body=b"before")["VersionId"]
    up = alice.create_multipart_upload(Bucket=versioned, Key="mp/obj")["UploadId"]
    part = alice.upload_part(
        Bucket=versioned, Key="mp/obj", UploadId=up, PartNumber=1, Body=b"after"
    )
    done = alice.complete_multipart_upload(
        Bucket=versioned,
        Key="mp/obj",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done["VersionId"] != old
    assert (world["share"] / "mp" / "obj").read_bytes() == b"after"
    got = alice.get_object(Bucket=versioned, Key="mp/obj", VersionId=old)
    assert got["Body"].read() == b"before"


def test_suspended_writes_replace_the_null_version(
    alice: Any, versioned: str, world: dict[str, Any]
) -> None:
    share: Path = world["share"]
    (share / "s").mkdir()
    (share / "s" / "smb.txt").write_bytes(b"from smb")  # no version id: the null version
    real = alice.put_object(Bucket=versioned, Key="s/smb.txt", Body=b"v1")["VersionId"]
    assert [v[1] for v in _versions(alice, versioned, Prefix="s/")] == [real, "null"]
    assert alice.get_object(Bucket=versioned, Key="s/smb.txt", VersionId="null")["Body"].read() == (
        b"from smb"
    )
    alice.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Suspended"})
    try:
        assert (
            alice.put_object(Bucket=versioned, Key="s/smb.txt", Body=b"n1")["VersionId"] == "null"
        )
        assert (
            alice.put_object(Bucket=versioned, Key="s/smb.txt", Body=b"n2")["VersionId"] == "null"
        )
        listed = _versions(alice, versioned, Prefix="s/")
        assert [(v[1], v[2]) for v in listed] == [("null", True), (real, False)]
        assert (share / "s" / "smb.txt").read_bytes() == b"n2"
    finally:
        alice.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})


def test_a_bucket_with_versions_is_not_empty(alice: Any, daemon: Daemon) -> None:
    alice.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    alice.put_object(Bucket="vers", Key="z/only", Body=b"x")
    alice.delete_object(Bucket="vers", Key="z/only")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.delete_bucket(Bucket="vers")
    assert code(exc)[1] in (403, 409)  # not empty (or not alice's to delete): never gone
    alice.head_bucket(Bucket="vers")
