"""S3's additional checksums against published check values and an independent bit-by-bit
implementation, and the rules for what a request may send; with the small parsers of
DeleteObjects, tagging and CopyObject, and old metadata records."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib

import pytest
from botocore import httpchecksum  # type: ignore[import-untyped]

from speicher.protocols.s3 import checksums, copy, deleteobjects, tagging
from speicher.protocols.s3.errors import S3Error
from speicher.protocols.s3.objects import ObjectMeta

CHECK = b"123456789"


def _reflected(poly: int, width: int, data: bytes) -> int:
    """A reflected CRC with all-ones init and final xor, one bit at a time (slow and plain)."""
    top = (1 << width) - 1
    crc = top
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (poly if crc & 1 else 0)
    return crc ^ top


def _b64(value: int, size: int) -> str:
    return base64.b64encode(value.to_bytes(size, "big")).decode()


def test_check_values() -> None:
    assert checksums.of("crc32", CHECK) == _b64(0xCBF43926, 4)
    assert checksums.of("crc32c", CHECK) == _b64(0xE3069283, 4)
    assert checksums.of("crc64nvme", CHECK) == _b64(0xAE8B14860A799888, 8)
    assert (
        checksums.of("sha1", CHECK)
        == base64.b64encode(hashlib.sha1(CHECK, usedforsecurity=False).digest()).decode()
    )
    assert (
        checksums.of("sha256", CHECK) == base64.b64encode(hashlib.sha256(CHECK).digest()).decode()
    )
    assert checksums.of("crc32", b"") == "AAAAAA=="
    assert checksums.of("crc64nvme", b"") == "AAAAAAAAAAA="


@pytest.mark.parametrize("name", checksums.ALGORITHMS)
def test_streamed_in_pieces_equals_whole_and_matches_botocore(name: str) -> None:
    data = os.urandom(100_003)
    checksum = checksums.Checksum(name)
    for start in range(0, len(data), 7_919):
        checksum.update(memoryview(data)[start : start + 7_919])
    assert checksum.b64() == checksums.of(name, data)
    oracle = httpchecksum._CHECKSUM_CLS.get(name) or httpchecksum._CRT_CHECKSUM_CLS[name]
    reference = oracle()
    reference.update(data)
    assert checksum.b64() == reference.b64digest()


def test_crcs_match_a_bitwise_implementation() -> None:
    data = os.urandom(3_001)
    assert checksums.of("crc32", data) == _b64(_reflected(0xEDB88320, 32, data), 4)
    assert checksums.of("crc32", data) == _b64(zlib.crc32(data), 4)
    assert checksums.of("crc32c", data) == _b64(_reflected(0x82F63B78, 32, data), 4)
    assert checksums.of("crc64nvme", data) == _b64(_reflected(0x9A6C9329AC4BC9B5, 64, data), 8)


def _refused(headers: dict[str, str]) -> tuple[str, str]:
    with pytest.raises(S3Error) as exc:
        checksums.Wanted.of(headers)
    return exc.value.code, exc.value.message


def test_what_a_request_may_send() -> None:
    assert checksums.Wanted.of({}) is None
    assert checksums.Wanted.of({"x-amz-checksum-mode": "ENABLED"}) is None
    good = checksums.of("crc32c", CHECK)
    wanted = checksums.Wanted.of(
        {"x-amz-checksum-crc32c": good, "x-amz-sdk-checksum-algorithm": "CRC32C"}
    )
    assert wanted is not None and wanted.name == "crc32c" and not wanted.in_trailer
    wanted.update(CHECK)
    assert wanted.verify() == good
    trailer = checksums.Wanted.of({"x-amz-trailer": "x-amz-checksum-sha256"})
    assert trailer is not None and trailer.in_trailer and trailer.expected is None
    both = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-crc32c": "AAAAAA=="}
    assert _refused(both)[0] == "InvalidRequest"
    assert _refused({"x-amz-checksum-md5": "AAAAAA=="})[0] == "InvalidRequest"
    assert _refused({"x-amz-checksum-crc32": "not base64!"}) == (
        "InvalidRequest",
        "Value for x-amz-checksum-crc32 header is invalid.",
    )
    assert _refused({"x-amz-checksum-crc32": "AAAAAAAAAAA="})[0] == "InvalidRequest"  # 8 bytes
    mismatch = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "SHA256"}
    assert _refused(mismatch)[0] == "InvalidRequest"
    assert _refused({"x-amz-sdk-checksum-algorithm": "CRC32"})[0] == "InvalidRequest"


def test_a_wrong_value_is_bad_digest() -> None:
    wanted = checksums.Wanted.of({"x-amz-checksum-crc32": checksums.of("crc32", b"other")})
    assert wanted is not None
    wanted.update(CHECK)
    with pytest.raises(S3Error) as exc:
        wanted.verify()
    assert exc.value.code == "BadDigest" and exc.value.status == 400
    assert "CRC32 you specified did not match" in exc.value.message
    trailer = checksums.Wanted.of({"x-amz-trailer": "x-amz-checksum-crc64nvme"})
    assert trailer is not None
    trailer.update(CHECK)
    with pytest.raises(S3Error) as exc:
        trailer.verify({})
    assert exc.value.code == "MalformedTrailerError"
    assert trailer.verify({"x-amz-checksum-crc64nvme": checksums.of("crc64nvme", CHECK)})


def test_old_metadata_records_load_without_tags_and_checksums() -> None:
    old = json.dumps({"etag": "abc", "size": 3, "mtime_ns": 5, "headers": {}, "user": {}})
    meta = ObjectMeta.load(old.encode())
    assert meta is not None and meta.tags == {} and meta.checksums == {}
    meta.tags, meta.checksums = {"a": "b"}, {"crc32": "AAAAAA=="}
    again = ObjectMeta.load(meta.dump())
    assert again == meta


def test_tag_limits() -> None:
    assert tagging.from_header({}) is None
    assert tagging.from_header({"x-amz-tagging": "a=1&b=%C3%A4&c="}) == {
        "a": "1",
        "b": "ä",
        "c": "",
    }
    cases = [
        [(f"k{i}", "v") for i in range(11)],
        [("k" * 129, "v")],
        [("k", "v" * 257)],
        [("", "v")],
        [("aws:x", "v")],
        [("k", "1"), ("k", "2")],
    ]
    for tags in cases:
        with pytest.raises(S3Error) as exc:
            tagging.check(tags)
        assert exc.value.code == "InvalidTag"
    assert tagging.check([("ä" * 128, "ö" * 256)])  # characters, not bytes
    with pytest.raises(S3Error) as exc:
        tagging.from_header({"x-amz-tagging": "a=1&a=2"})
    assert exc.value.code == "InvalidArgument"
    body = (
        b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>'
        b"<Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
    )
    assert tagging.parse(body) == {"a": "1"}
    assert tagging.render({"a": "<&>"}).endswith(
        b"<TagSet><Tag><Key>a</Key><Value>&lt;&amp;&gt;</Value></Tag></TagSet></Tagging>"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete>",
        b"<Nope><Object><Key>a</Key></Object></Nope>",
        b"<Delete></Delete>",
        b"<Delete><Object></Object></Delete>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>",
        b'<!DOCTYPE d [<!ENTITY x "y">]><Delete><Object><Key>&x;</Key></Object></Delete>',
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
    ],
)
def test_malformed_delete_documents(body: bytes) -> None:
    with pytest.raises(S3Error) as exc:
        deleteobjects.parse(body)
    assert exc.value.code == "MalformedXML"


def test_delete_document() -> None:
    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>'
        b"<Object><Key>a &amp; b</Key></Object><Object><Key>c</Key><VersionId>null</VersionId>"
        b"</Object></Delete>"
    )
    wanted, quiet = deleteobjects.parse(body)
    assert quiet
    assert wanted == [deleteobjects.Wanted("a & b", None), deleteobjects.Wanted("c", "null")]


def test_copy_source() -> None:
    assert copy.source_of("/src/a%20b/c%3Fd") == ("src", "a b/c?d", None)
    assert copy.source_of("src/k?versionId=null") == ("src", "k", "null")
    assert copy.source_of("src/%C3%A4") == ("src", "ä", None)
    vid = "18ed5fb76c929533UFtyG0r8bduRQL-Q"
    assert copy.source_of(f"src/k?versionId={vid}") == ("src", "k", vid)
    for bad in ("/src", "src/", "/", "src/k?versionId=abc"):
        with pytest.raises(S3Error) as exc:
            copy.source_of(bad)
        assert exc.value.code == "InvalidArgument"
