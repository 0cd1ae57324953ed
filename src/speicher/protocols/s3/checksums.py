"""S3's additional checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256): which one a request
asks for, computing it while the body streams in, checking it against what the client sent
(``BadDigest`` as AWS says it), and small request bodies (DeleteObjects, PutObjectTagging)
read whole with their integrity checked.

A client names its checksum in one of two ways (S3 User Guide, "Checking object integrity"):

- an ``x-amz-checksum-<alg>`` header with the base64 of the big-endian checksum, which the
  server checks once the body is in;
- ``x-amz-trailer: x-amz-checksum-<alg>`` with an ``aws-chunked`` body whose trailer carries
  the value (what the SDKs send over HTTPS), usually with ``x-amz-sdk-checksum-algorithm``.

CRC32 is zlib's; CRC32C and CRC64NVME are the AWS Common Runtime's (``awscrt``, the package
botocore itself uses for them; hardware-accelerated, gigabytes a second). SHA1 and SHA256 are
hashlib's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from awscrt import checksums as crt  # type: ignore[import-untyped]
from starlette.types import Receive

from speicher.protocols.s3 import sigv4
from speicher.protocols.s3.errors import S3Error
from speicher.protocols.s3.payload import Payload

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
HEADER = "x-amz-checksum-"
_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


class Checksum:
    """One algorithm's running checksum; :meth:`b64` is the form S3's headers carry."""

    def __init__(self, name: str) -> None:
        if name not in ALGORITHMS:
            raise ValueError(f"not an S3 checksum algorithm: {name!r}")
        self.name = name
        self._crc = 0
        self._hash = hashlib.new(name, usedforsecurity=False) if name.startswith("sha") else None
        self._step: Callable[[bytes | bytearray | memoryview, int], int] | None = {
            "crc32": zlib.crc32,
            "crc32c": crt.crc32c,
            "crc64nvme": crt.crc64nvme,
        }.get(name)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self._step is not None:
            self._crc = self._step(data, self._crc)

    def digest(self) -> bytes:
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(_SIZES[self.name], "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


def of(name: str, data: bytes | bytearray | memoryview) -> str:
    """The base64 checksum of ``data`` (tests and small bodies)."""
    checksum = Checksum(name)
    checksum.update(data)
    return checksum.b64()


def _invalid(name: str) -> S3Error:
    return S3Error("InvalidRequest", f"Value for {HEADER}{name} header is invalid.")


def _unsupported() -> S3Error:
    return S3Error(
        "InvalidRequest",
        "Checksum algorithm provided is unsupported. Please try again with any of the valid "
        "types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
    )


def _valid(name: str, value: str) -> str:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(name) from None
    if len(raw) != _SIZES[name]:
        raise _invalid(name)
    return value.strip()


@dataclass
class Wanted:
    """The checksum a request asks the server to verify and keep: the algorithm, its value
    when it came as a header (``None``: it comes in the trailer)."""

    checksum: Checksum
    expected: str | None
    in_trailer: bool

    @property
    def name(self) -> str:
        return self.checksum.name

    @classmethod
    def of(cls, headers: dict[str, str]) -> Wanted | None:
        """What the request's headers ask for (None: no checksum), refusing what AWS
        refuses: several checksum headers, an unknown algorithm, a value that is no base64
        checksum of that algorithm, or ``x-amz-sdk-checksum-algorithm`` naming another."""
        sent = {
            k[len(HEADER) :]: v
            for k, v in headers.items()
            if k.startswith(HEADER) and k[len(HEADER) :] not in ("mode", "type", "algorithm")
        }
        trailer = [
            t.strip().lower()
            for t in headers.get("x-amz-trailer", "").split(",")
            if t.strip().lower().startswith(HEADER)
        ]
        sdk = headers.get("x-amz-sdk-checksum-algorithm", "").strip().lower() or None
        if len(sent) + len(trailer) > 1:
            raise S3Error(
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                "allowed.",
            )
        if sdk is not None and sdk not in ALGORITHMS:
            raise _unsupported()
        name: str | None = None
        expected: str | None = None
        if sent:
            name, value = next(iter(sent.items()))
            if name not in ALGORITHMS:
                raise _unsupported()
            expected = _valid(name, value)
        elif trailer:
            name = trailer[0][len(HEADER) :]
            if name not in ALGORITHMS:
                raise _unsupported()
        if name is None:
            if sdk is None:
                return None
            # an algorithm without its value: AWS wants the value (header or trailer)
            raise S3Error(
                "InvalidRequest",
                f"x-amz-sdk-checksum-algorithm specified, but no corresponding {HEADER}* or "
                "x-amz-trailer headers were found.",
            )
        if sdk is not None and sdk != name:
            raise S3Error(
                "InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid."
            )
        return cls(Checksum(name), expected, bool(trailer))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.checksum.update(data)

    def verify(self, trailers: dict[str, str] | None = None) -> str:
        """Check the computed checksum against the header's or the trailer's value (the
        decoder's :meth:`~sigv4.ChunkedDecoder.finish`); the value to keep."""
        expected = self.expected
        if self.in_trailer:
            value = (trailers or {}).get(HEADER + self.name)
            if value is None:
                raise S3Error(
                    "MalformedTrailerError",
                    f"The request's trailer does not carry the declared {HEADER}{self.name}.",
                )
            expected = _valid(self.name, value)
        computed = self.checksum.b64()
        if expected is None or not hmac.compare_digest(computed, expected):
            raise S3Error(
                "BadDigest",
                f"The {self.name.upper()} you specified did not match the calculated checksum.",
            )
        return computed


def verified(wanted: Wanted | None, trailers: dict[str, str]) -> dict[str, str]:
    """The checksum to store with an object (none if the request sent none), verified."""
    return {} if wanted is None else {wanted.name: wanted.verify(trailers)}


def for_get(
    headers: dict[str, str], stored: dict[str, str], whole: bool
) -> list[tuple[bytes, bytes]]:
    """The checksum headers of a GET or HEAD: only with ``x-amz-checksum-mode: ENABLED`` and
    for the whole object (a range has no checksum of its own)."""
    if not whole or headers.get("x-amz-checksum-mode", "").upper() != "ENABLED":
        return []
    return response_headers(stored)


def response_headers(stored: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """``x-amz-checksum-<alg>`` and ``x-amz-checksum-type`` of a whole object, for a GET or
    HEAD with ``x-amz-checksum-mode: ENABLED``."""
    out = [((HEADER + name).encode(), value.encode()) for name, value in stored.items()]
    if out:
        out.append((b"x-amz-checksum-type", b"FULL_OBJECT"))
    return out


async def read_body(
    receive: Receive, verified: sigv4.Verified, headers: dict[str, str], limit: int
) -> bytes:
    """A small XML body read whole, at most ``limit`` bytes (``MalformedXML`` past it), with
    its integrity checked as AWS checks it: the signed payload hash, an ``aws-chunked``
    framing and its signatures, ``Content-MD5`` and an ``x-amz-checksum-*`` header or
    trailer."""
    wanted = Wanted.of(headers)
    payload = Payload(verified, headers)
    too_large = S3Error(
        "MalformedXML", f"The XML you provided is larger than this operation takes ({limit} bytes)."
    )
    body = bytearray(await payload.whole(receive, limit, too_large))
    _check_digests(headers, body, wanted, payload.trailers)
    return bytes(body)


def _check_digests(
    headers: dict[str, str], body: bytearray, wanted: Wanted | None, trailers: dict[str, str] | None
) -> None:
    md5 = headers.get("content-md5")
    if md5 is not None:
        try:
            given = base64.b64decode(md5, validate=True)
        except (binascii.Error, ValueError):
            raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.") from None
        if given != hashlib.md5(body, usedforsecurity=False).digest():
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what we received."
            )
    if wanted is not None:
        wanted.update(body)
        wanted.verify(trailers)


def require_integrity(headers: dict[str, str]) -> None:
    """DeleteObjects (and the other operations AWS marks so) need a Content-MD5 or an
    ``x-amz-checksum-*`` header or trailer."""
    if "content-md5" in headers or Wanted.of(headers) is not None:
        return
    raise S3Error(
        "InvalidRequest",
        "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
    )
