"""S3 multipart rules without a daemon: the CompleteMultipartUpload body, the multipart ETag,
ListMultipartUploads' paging, UploadPartCopy's range and conditions, and ShareFS's internal
storage and the removal of abandoned uploads on a plain folder."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path

import pytest

from speicher.files import FsError
from speicher.files.sharefs import _internal
from speicher.protocols.s3 import copy, multipart
from speicher.protocols.s3.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def refused(code: str, call: object, *args: object) -> None:
    with pytest.raises(S3Error) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.code == code, info.value.message


def test_complete_body() -> None:
    body = (
        f'<CompleteMultipartUpload xmlns="{NS}"><Part><ETag>"abc"</ETag>'
        "<PartNumber>1</PartNumber><ChecksumCRC32>x</ChecksumCRC32></Part>"
        "<Part><PartNumber> 3 </PartNumber><ETag>def</ETag></Part></CompleteMultipartUpload>"
    ).encode()
    assert multipart.parse_complete(body) == [(1, "abc"), (3, "def")]
    plain = b"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>&quot;e&quot;</ETag>"
    assert multipart.parse_complete(plain + b"</Part></CompleteMultipartUpload>") == [(2, "e")]
    for bad in (
        b"",
        b"<CompleteMultipartUpload/>",  # no parts
        b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b"<Other><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Other>",
        b"<CompleteMultipartUpload><Part>",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><CompleteMultipartUpload/>',
    ):
        refused("MalformedXML", multipart.parse_complete, bad)


def test_multipart_etag() -> None:
    parts = [b"a" * 10, b"b" * 3]
    digests = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    wanted = hashlib.md5(digests, usedforsecurity=False).hexdigest() + "-2"
    md5s = [hashlib.md5(p, usedforsecurity=False).hexdigest() for p in parts]
    assert multipart.multipart_etag(md5s) == wanted


def record(key: str, n: int) -> multipart.Record:
    return multipart.Record(f"{n:016x}{'x' * 32}", key, "alice", n)


def test_list_uploads_pages() -> None:
    records = [record("a", 1), record("a", 2), record("b/c", 3), record("b/d", 4), record("c", 5)]
    select = multipart._select
    items, more = select(records, "", "", "", "", 2)
    assert items == records[:2] and more
    items, more = select(records, "", "", "a", records[0].upload_id, 2)
    assert items == [records[1], records[2]] and more
    items, more = select(records, "", "", "a", "", 10)  # past every upload of "a"
    assert items == records[2:] and not more
    items, more = select(records, "", "/", "", "", 10)
    assert items == [records[0], records[1], "b/", records[4]] and not more
    items, more = select(records, "", "/", "b/", "", 10)  # a common prefix as the marker
    assert items == [records[4]]
    items, more = select(records, "b/", "", "", "", 10)
    assert items == records[2:4]


def test_copy_source_range_and_conditions() -> None:
    assert multipart._copy_range(None, 10) == (0, 10)
    assert multipart._copy_range("bytes=2-5", 10) == (2, 6)
    refused("InvalidRange", multipart._copy_range, "bytes=0-10", 10)
    for bad in ("bytes=5-2", "bytes=-3", "bytes=1-", "items=1-2"):
        refused("InvalidArgument", multipart._copy_range, bad, 10)
    assert copy.source_of("/b/k%20x") == ("b", "k x", None)
    assert copy.source_of("b/k?versionId=null") == ("b", "k", "null")
    refused("InvalidArgument", copy.source_of, "b/k?versionId=3")  # not a version id
    refused("InvalidArgument", copy.source_of, "bucket-only")
    check = multipart._copy_conditions
    mtime = 1_700_000_000 * 10**9
    check({"x-amz-copy-source-if-match": '"e"'}, '"e"', mtime)
    refused("PreconditionFailed", check, {"x-amz-copy-source-if-match": '"f"'}, '"e"', mtime)
    refused("PreconditionFailed", check, {"x-amz-copy-source-if-none-match": "*"}, '"e"', mtime)
    later = "Wed, 01 Jan 2031 00:00:00 GMT"
    refused(
        "PreconditionFailed", check, {"x-amz-copy-source-if-modified-since": later}, '"e"', mtime
    )
    # a true If-Match outweighs a false If-Unmodified-Since, as AWS documents
    early = "Wed, 01 Jan 2020 00:00:00 GMT"
    check(
        {"x-amz-copy-source-if-match": '"e"', "x-amz-copy-source-if-unmodified-since": early},
        '"e"',
        mtime,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="internal storage is root's")
def test_internal_storage_and_abandoned_uploads(tmp_path: Path) -> None:
    top = tmp_path / "share"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FsError) as info:
            _internal(fd, multipart.UPLOADS, False, True, True)
        assert info.value.code == errno.ENOENT
        uploads = _internal(fd, multipart.UPLOADS, True, True, True)
    finally:
        os.close(fd)
    with uploads:
        assert (top / ".speicher").stat().st_mode & 0o777 == 0o700
        fresh, old = "0" * 16 + "a" * 32, "0" * 16 + "b" * 32
        for name in (fresh, old):
            with uploads.folder(name, create=True) as folder:
                folder.write("upload.json", multipart.Record(name, "k", "alice", 0).dump())
                folder.write("upload.json", multipart.Record(name, "k", "bob", 0).dump())
                with folder.create() as file:
                    file.write(b"never published")  # discarded at the end of the block
        assert sorted(os.listdir(top / ".speicher/s3/uploads" / old)) == ["upload.json"]
        stored = top / ".speicher/s3/uploads" / old / "upload.json"
        assert stored.stat().st_mode & 0o777 == 0o600 and stored.stat().st_uid == 0
        assert b'"bob"' in stored.read_bytes()  # replaced atomically
        with pytest.raises(FsError):
            uploads.folder("../x")
        day = 86400 * 10**9
        long_ago = time.time_ns() - 10 * day
        os.utime(top / ".speicher/s3/uploads" / old, ns=(long_ago, long_ago))
        assert multipart.remove_abandoned(uploads, 7 * 86400) == 1
        assert uploads.names() == [fresh]
        assert multipart.remove_abandoned(uploads, 0) == 1  # 0 days: everything
        assert uploads.names() == []
    # a link where the internal folder should be is never followed
    outside = tmp_path / "outside"
    outside.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / ".speicher").symlink_to(outside)
    fd = os.open(other, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FsError):
            _internal(fd, multipart.UPLOADS, True, True, True)
    finally:
        os.close(fd)
    assert list(outside.iterdir()) == []
