"""AWS Signature Version 4 as S3 checks it: who signed a request, and what the body must be.

Pure functions and small classes, no I/O. The S3 server calls :func:`verify` with the request
as it came on the wire and gets a :class:`Verified` (or ``None`` for an anonymous request, or
a :class:`SignatureError` that carries the S3 error code, message and status AWS answers
with). The body then goes through a :class:`PayloadHasher` (a signed ``x-amz-content-sha256``)
or a :class:`ChunkedDecoder` (``aws-chunked`` bodies), both O(1) or O(chunk) in memory.

What follows the AWS documentation ("Authenticating Requests (AWS Signature Version 4)" in
the S3 API reference, its pages on the Authorization header, chunked uploads, trailing
headers and presigned URLs) and what real signers send (botocore's ``S3SigV4Auth`` and
``S3SigV4QueryAuth``, the AWS SDK for Java's chunk encoder):

- S3 signs the path as the client sent it: no double encoding, no removal of ``//`` or ``.``
  segments (botocore's S3 signer skips that normalisation too). A client that sent a
  character raw that AWS's rules encode (``!``, ``$``, ``@`` ...) and signed the encoded form
  is also accepted: both forms name the same key.
- The query is decoded and re-encoded by AWS's rules (unreserved ``A-Z a-z 0-9 - _ . ~``
  stay, every other byte is ``%XX`` upper-case), ``+`` in a raw query is a space (as in any
  form-encoded query, and as minio-go signs it), a parameter without ``=`` has an empty
  value, the pairs are sorted by name then value.
- Header values are trimmed and runs of spaces become one. Values are taken as the server
  decoded them from the wire (ISO-8859-1, as ASGI servers do); a request whose non-ASCII
  header bytes were signed as they are and one signed as botocore does (the text's UTF-8)
  both verify.
- Every ``x-amz-*`` header of the request and ``host`` must be signed, as AWS requires
  (``AccessDenied``, "There were headers present in the request which were not signed").
- Clock skew: 15 minutes either way for the Authorization header; a presigned URL may be up
  to 15 minutes early and is good until ``X-Amz-Date + X-Amz-Expires`` (at most 604,800 s).
- Signature Version 2 is refused with AWS's answer for regions that only take Version 4:
  ``InvalidRequest``, "Please use AWS4-HMAC-SHA256".
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
#: The ``x-amz-content-sha256`` values that announce an ``aws-chunked`` body.
STREAMING = frozenset({STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER})

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: How far a request's time may be from the server's (AWS: 15 minutes).
MAX_SKEW = datetime.timedelta(minutes=15)
#: The longest a presigned URL may be good for (AWS: one week).
MAX_EXPIRES = 604_800
#: The largest signed chunk :class:`ChunkedDecoder` holds back until its signature is checked
#: (minio takes the same). Unsigned chunks stream through whatever their size.
MAX_SIGNED_CHUNK = 16 * 1024 * 1024
_MAX_LINE = 4096  # a chunk header or a trailer line
_MAX_TRAILER = 16 * 1024  # all trailer lines together

_STATUS = {
    "AccessDenied": 403,
    "SignatureDoesNotMatch": 403,
    "InvalidAccessKeyId": 403,
    "RequestTimeTooSkewed": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "InvalidArgument": 400,
    "InvalidRequest": 400,
    "XAmzContentSHA256Mismatch": 400,
    "MissingSecurityHeader": 400,
    "IncompleteBody": 400,
    "MalformedTrailerError": 400,
    "BadDigest": 400,
    "InvalidDigest": 400,
}

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SCOPE_DATE = re.compile(r"\d{8}")
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_WIRE_SPACES = re.compile(r"[ \t]+")
_STAMP = "%Y%m%dT%H%M%SZ"

_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_UNSIGNED_HEADERS = "There were headers present in the request which were not signed"
_V4_ONLY = (
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
)


class SignatureError(Exception):
    """A request S3 refuses before looking at what it asks for.

    ``code`` is the S3 error code, ``message`` one readable sentence, ``status`` the HTTP
    status AWS answers with, and ``extra`` the further elements AWS puts in its error
    document for this code (``Region``, ``HeadersNotSigned``, ``StringToSign``, ...), to be
    written after ``Message``.
    """

    def __init__(self, code: str, message: str, extra: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = _STATUS[code]
        self.extra: dict[str, str] = dict(extra or {})


@dataclass(frozen=True)
class Verified:
    """Who signed a request, and what its body has to be.

    ``amz_date`` is the request's time in the ``20261202T101500Z`` form the string to sign
    uses (from ``x-amz-date``, ``Date`` or ``X-Amz-Date``); ``scope`` is
    ``20261202/us-east-1/s3/aws4_request``; ``signing_key`` and ``signature`` (the seed
    signature) are what chunk and trailer signatures chain from; ``payload`` is the
    ``x-amz-content-sha256`` value the signature covers: ``UNSIGNED-PAYLOAD``, a lower-case
    hex SHA-256 (check it with :class:`PayloadHasher`) or one of :data:`STREAMING` (decode
    the body with :class:`ChunkedDecoder`).
    """

    access_key: str
    amz_date: str
    scope: str
    signing_key: bytes
    signature: str
    payload: str
    presigned: bool


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    now: datetime.datetime,
    region: str = "us-east-1",
) -> Verified | None:
    """Check a request's Signature Version 4, in its Authorization header or its query.

    ``raw_path`` is the path exactly as sent (still percent-encoded), ``raw_query`` the query
    without ``?``; ``headers`` has lower-case names, several values of one name joined with
    ``,``. ``secret_for`` gives the secret of an access key, or None for a key that does not
    exist. ``now`` is the server's time (UTC). Returns None for an anonymous request (no
    Authorization header, no signature in the query): the server decides what anonymous
    may do. Raises :class:`SignatureError` for everything AWS refuses.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.UTC)
    pairs = _parse_query(raw_query)
    names = {name for name, _ in pairs}
    v4_query = bool(names & {b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Signature"})
    v2_query = bool(names & {b"AWSAccessKeyId", b"Signature"})
    authorization = headers.get("authorization")
    if (authorization is not None and (v4_query or v2_query)) or (v4_query and v2_query):
        raise SignatureError(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            {"ArgumentName": "Authorization", "ArgumentValue": authorization or ""},
        )
    if authorization is not None:
        return _verify_header(
            method, raw_path, pairs, headers, authorization, secret_for, now, region
        )
    if v4_query:
        return _verify_query(method, raw_path, pairs, headers, secret_for, now, region)
    if v2_query:
        raise SignatureError("InvalidRequest", _V4_ONLY)
    return None


class PayloadHasher:
    """The SHA-256 of a body as it streams in, against the declared ``x-amz-content-sha256``.

    The server feeds every body byte to :meth:`update` and calls :meth:`check` at the end,
    before it makes anything of the body visible: a mismatch is AWS's
    ``XAmzContentSHA256Mismatch``. Memory is constant.
    """

    def __init__(self, expected: str) -> None:
        if not _HEX64.fullmatch(expected):
            raise ValueError(f"not a hex SHA-256: {expected!r}")
        self.expected = expected.lower()
        self.length = 0
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash the next piece of the body."""
        self._hash.update(data)
        self.length += len(data)

    def hexdigest(self) -> str:
        """The SHA-256 of what came so far."""
        return self._hash.hexdigest()

    def check(self) -> None:
        """Raise ``XAmzContentSHA256Mismatch`` unless the body hashes to the declared value."""
        computed = self._hash.hexdigest()
        if not hmac.compare_digest(computed, self.expected):
            raise SignatureError(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                {
                    "ClientComputedContentSHA256": self.expected,
                    "S3ComputedContentSHA256": computed,
                },
            )


class ChunkedDecoder:
    """Decodes an ``aws-chunked`` body incrementally, checking chunk and trailer signatures.

    Built from the request's :class:`Verified` (whose ``payload`` is one of
    :data:`STREAMING`), its ``x-amz-decoded-content-length`` and its ``x-amz-trailer``, if
    the request had them. :meth:`feed` takes the body in pieces of any size and returns the
    payload bytes it has decoded so far; :meth:`finish` at the end of the body returns the
    trailing headers (``{"x-amz-checksum-crc32": "..."}``) or raises. Once it raised, it
    raises the same error again.

    The wire forms (S3 API reference, "Transferring Payload in Multiple Chunks" and
    "Including Trailing Headers"):

    - ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: chunks ``hex-size;chunk-signature=SIG\\r\\n``
      ``DATA\\r\\n``, the last of size 0. Each chunk's string to sign is
      ``AWS4-HMAC-SHA256-PAYLOAD``, the request time, the scope, the previous signature (the
      seed signature first), the SHA-256 of nothing and the SHA-256 of the chunk, one a
      line. Data of a signed chunk is returned only once its signature is checked, so the
      decoder holds up to one chunk (at most :data:`MAX_SIGNED_CHUNK` bytes).
    - ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (what botocore sends over HTTPS with a
      checksum): chunks ``hex-size\\r\\nDATA\\r\\n``, then ``0\\r\\n``, the trailer lines
      ``name:value\\r\\n`` and ``\\r\\n``. Data streams through as it comes.
    - ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: signed chunks, the signed final chunk,
      the trailer lines and ``x-amz-trailer-signature:SIG``, whose string to sign is
      ``AWS4-HMAC-SHA256-TRAILER``, the request time, the scope, the final chunk's
      signature and the SHA-256 of the trailers as ``name:value\\n`` each (the AWS SDK for
      Java's canonical trailer form: names lower-case and sorted).

    Also taken, as other servers take them: lines ended by a bare ``\\n``, an empty line
    between the final chunk and the trailers (the form of AWS's own trailer example), and a
    body that ends after the final chunk or the last trailer line without the closing
    ``\\r\\n``. Broken framing (a size that is not hex, data longer than its size, a body
    that stops early, decoded bytes other than ``x-amz-decoded-content-length``) is
    ``IncompleteBody``; trailers that are malformed, undeclared or missing are
    ``MalformedTrailerError``; a wrong chunk or trailer signature is
    ``SignatureDoesNotMatch``.
    """

    _SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)

    def __init__(
        self,
        verified: Verified,
        decoded_length: int | str | None = None,
        trailer: str | None = None,
        *,
        max_signed_chunk: int = MAX_SIGNED_CHUNK,
    ) -> None:
        if verified.payload not in STREAMING:
            raise ValueError(f"not an aws-chunked payload: {verified.payload!r}")
        self._signed = verified.payload != STREAMING_UNSIGNED_TRAILER
        self._trailers_allowed = verified.payload != STREAMING_SIGNED
        self._key = verified.signing_key
        self._amz_date = verified.amz_date
        self._scope = verified.scope
        self._previous = verified.signature
        self._max_signed_chunk = max_signed_chunk
        self._expected_length = _decoded_length(decoded_length)
        self._declared: frozenset[str] | None = None
        if trailer is not None:
            self._declared = frozenset(
                name.strip().lower() for name in trailer.split(",") if name.strip()
            )
        self._state = self._SIZE
        self._line = bytearray()  # the unfinished line
        self._remaining = 0  # data bytes left in the current chunk
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._held = bytearray()  # a signed chunk's data until its signature is checked
        self.decoded = 0  # payload bytes decoded so far
        self._trailer_bytes = 0
        self._blank_skipped = False
        self._trailer_seen = False
        self._trailer_lines: list[tuple[str, str]] = []
        self._trailer_signature: str | None = None
        self._trailers: dict[str, str] = {}
        self._error: SignatureError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Decode the next piece of the body; returns the payload bytes it completed."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(memoryview(data).cast("B"))
        except SignatureError as error:
            self._error = error
            raise

    def finish(self) -> dict[str, str]:
        """The body has ended: check it was whole, return the trailing headers."""
        if self._error is not None:
            raise self._error
        try:
            if self._state == self._TRAILER:
                if self._line:
                    line = bytes(self._line)
                    self._line.clear()
                    self._trailer_line(line.removesuffix(b"\r"))
                if self._state == self._TRAILER:
                    self._end_trailers()
            if self._state != self._DONE:
                raise SignatureError(
                    "IncompleteBody", "The aws-chunked body ended before its final chunk."
                )
        except SignatureError as error:
            self._error = error
            raise
        return dict(self._trailers)

    def _feed(self, view: memoryview) -> bytes:
        out: list[bytes] = []
        pos, end = 0, len(view)
        while pos < end:
            if self._state == self._DATA:
                n = min(self._remaining, end - pos)
                piece = view[pos : pos + n]
                pos += n
                self._remaining -= n
                self.decoded += n
                if self._signed:
                    self._chunk_hash.update(piece)
                    self._held += piece
                else:
                    out.append(bytes(piece))
                if self._remaining == 0:
                    if self._signed:
                        self._check_chunk()
                        out.append(bytes(self._held))
                        self._held.clear()
                    self._state = self._DATA_END
                continue
            if self._state == self._DONE:
                raise SignatureError(
                    "IncompleteBody", "The request has data after the end of its aws-chunked body."
                )
            newline = _find_newline(view, pos, end)
            if newline < 0:
                take = min(end - pos, _MAX_LINE + 1)
                self._line += view[pos : pos + take]
                self._check_line_length()
                break
            self._line += view[pos : pos + newline]
            pos += newline + 1
            self._check_line_length()
            line = bytes(self._line).removesuffix(b"\r")
            self._line.clear()
            self._on_line(line)
        return b"".join(out)

    def _check_line_length(self) -> None:
        if len(self._line) > _MAX_LINE:
            if self._state == self._TRAILER:
                raise SignatureError("MalformedTrailerError", "A trailer line is too long.")
            raise SignatureError("IncompleteBody", "An aws-chunked chunk header is too long.")

    def _on_line(self, line: bytes) -> None:
        if self._state == self._SIZE:
            self._size_line(line)
        elif self._state == self._DATA_END:
            if line:
                raise SignatureError(
                    "IncompleteBody", "An aws-chunked chunk has more data than its size says."
                )
            self._state = self._SIZE
        else:  # _TRAILER
            self._trailer_line(line)

    def _size_line(self, line: bytes) -> None:
        size_text, *extensions = line.split(b";")
        size_text = size_text.strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise SignatureError(
                "IncompleteBody",
                f"An aws-chunked chunk size is not a hex number: {_show(size_text)}.",
            )
        size = int(size_text, 16)
        signature: str | None = None
        for extension in extensions:
            name, _, value = extension.partition(b"=")
            if name.strip() == b"chunk-signature":
                signature = value.strip().decode("ascii", "replace")
        if self._signed:
            if signature is None or not _SIGNATURE.fullmatch(signature):
                raise SignatureError(
                    "SignatureDoesNotMatch", "An aws-chunked chunk has no valid chunk-signature."
                )
            if size > self._max_signed_chunk:
                raise SignatureError(
                    "InvalidArgument",
                    f"A signed aws-chunked chunk of {size} bytes is larger than the "
                    f"{self._max_signed_chunk} bytes this server takes.",
                )
            self._chunk_signature = signature
            self._chunk_hash = hashlib.sha256()
        if self._expected_length is not None and self.decoded + size > self._expected_length:
            raise SignatureError(
                "IncompleteBody",
                f"The aws-chunked body carries more than the {self._expected_length} bytes "
                "its x-amz-decoded-content-length says.",
            )
        if size == 0:
            if self._signed:
                self._check_chunk()
            self._state = self._TRAILER
        else:
            self._remaining = size
            self._state = self._DATA

    def _check_chunk(self) -> None:
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                self._amz_date,
                self._scope,
                self._previous,
                EMPTY_SHA256,
                self._chunk_hash.hexdigest(),
            )
        )
        expected = _hmac_hex(self._key, string_to_sign)
        if not hmac.compare_digest(expected, self._chunk_signature):
            raise SignatureError(
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the signature you provided "
                f"(for the chunk that ends at payload byte {self.decoded}).",
                {"StringToSign": string_to_sign, "SignatureProvided": self._chunk_signature},
            )
        self._previous = expected

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > _MAX_TRAILER:
            raise SignatureError("MalformedTrailerError", "The trailing headers are too long.")
        if not line:
            if not self._trailer_seen and not self._blank_skipped and self._trailers_allowed:
                self._blank_skipped = True  # AWS's example puts one before the trailers
                return
            self._end_trailers()
            return
        if not self._trailers_allowed:
            raise SignatureError(
                "MalformedTrailerError",
                f"Trailing headers need x-amz-content-sha256 {STREAMING_SIGNED_TRAILER} or "
                f"{STREAMING_UNSIGNED_TRAILER}.",
            )
        self._trailer_seen = True
        raw_name, colon, raw_value = line.partition(b":")
        try:
            name = raw_name.decode("ascii").strip().lower()
            value = raw_value.decode("ascii").strip()
        except UnicodeDecodeError:
            name = value = ""
        if not colon or not name:
            raise SignatureError(
                "MalformedTrailerError", f"A trailer line is not name:value: {_show(line)}."
            )
        if name == "x-amz-trailer-signature":
            if self._signed:
                if self._trailer_signature is not None:
                    raise SignatureError(
                        "MalformedTrailerError", "The trailer has two x-amz-trailer-signature."
                    )
                self._trailer_signature = value
            return  # an unsigned stream's trailer signature says nothing: ignored
        if name in self._trailers:
            raise SignatureError("MalformedTrailerError", f"The trailer {name} came twice.")
        if self._declared is not None and name not in self._declared:
            raise SignatureError(
                "MalformedTrailerError", f"The trailer {name} is not declared in x-amz-trailer."
            )
        self._trailers[name] = value
        self._trailer_lines.append((name, value))

    def _end_trailers(self) -> None:
        if self._declared is not None:
            missing = sorted(self._declared - self._trailers.keys())
            if missing:
                raise SignatureError(
                    "MalformedTrailerError",
                    f"The trailer {', '.join(missing)} declared in x-amz-trailer did not come.",
                )
        if self._signed and self._trailers_allowed:
            self._check_trailer_signature()
        if self._expected_length is not None and self.decoded != self._expected_length:
            raise SignatureError(
                "IncompleteBody",
                f"The aws-chunked body carries {self.decoded} bytes, its "
                f"x-amz-decoded-content-length says {self._expected_length}.",
            )
        self._state = self._DONE

    def _check_trailer_signature(self) -> None:
        provided = self._trailer_signature
        if provided is None:
            raise SignatureError(
                "SignatureDoesNotMatch", "The trailing headers have no x-amz-trailer-signature."
            )
        first = ""
        for lines in (sorted(self._trailer_lines), self._trailer_lines):
            canonical = "".join(f"{name}:{value}\n" for name, value in lines)
            string_to_sign = "\n".join(
                (
                    "AWS4-HMAC-SHA256-TRAILER",
                    self._amz_date,
                    self._scope,
                    self._previous,
                    hashlib.sha256(canonical.encode("ascii")).hexdigest(),
                )
            )
            first = first or string_to_sign
            if hmac.compare_digest(
                _hmac_hex(self._key, string_to_sign).encode("ascii"),
                provided.encode("ascii", "replace"),
            ):
                return
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The trailer signature we calculated does not match the signature you provided.",
            {"StringToSign": first, "SignatureProvided": provided},
        )


@functools.lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The Signature Version 4 signing key of a secret for a day (``20261202``) and region
    (remembered, as the SDKs do: four HMACs less per request; a secret is a day's key for
    many requests)."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, TERMINATOR)


# ---------------------------------------------------------------------------------------------
# The Authorization header and the presigned query


@dataclass(frozen=True)
class _Credential:
    access_key: str
    date: str
    region: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{SERVICE}/{TERMINATOR}"


def _verify_header(
    method: str,
    raw_path: str,
    pairs: list[tuple[bytes, bytes]],
    headers: Mapping[str, str],
    authorization: str,
    secret_for: Callable[[str], str | None],
    now: datetime.datetime,
    region: str,
) -> Verified:
    value = authorization.strip()
    parts = value.split(None, 1)
    algorithm = parts[0] if parts else ""
    if algorithm == "AWS":
        raise SignatureError("InvalidRequest", _V4_ONLY)
    if algorithm != ALGORITHM:
        raise SignatureError(
            "InvalidArgument",
            "Unsupported Authorization Type",
            {"ArgumentName": "Authorization", "ArgumentValue": authorization},
        )
    fields = _authorization_fields(parts[1] if len(parts) > 1 else "")

    def malformed(reason: str, extra: Mapping[str, str] | None = None) -> SignatureError:
        return SignatureError(
            "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; {reason}",
            extra,
        )

    credential = _credential(fields["Credential"], region, malformed)
    signed = _signed_headers(fields["SignedHeaders"], malformed)
    provided = fields["Signature"]

    when, amz_date = _header_time(headers)
    if credential.date != amz_date[:8]:
        raise malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
    if abs(now - when) > MAX_SKEW:
        raise SignatureError(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            {
                "RequestTime": headers.get("x-amz-date") or headers.get("date", ""),
                "ServerTime": _iso(now),
                "MaxAllowedSkewMilliseconds": str(int(MAX_SKEW.total_seconds() * 1000)),
            },
        )
    declared = headers.get("x-amz-content-sha256")
    if declared is None:
        raise SignatureError(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    payload = _payload(declared)
    _check_signed(headers, signed)
    return _check_signature(
        method,
        raw_path,
        canonical_pairs=pairs,
        headers=headers,
        signed=signed,
        payload=declared,
        normal_payload=payload,
        credential=credential,
        amz_date=amz_date,
        provided=provided,
        secret_for=secret_for,
        presigned=False,
    )


def _verify_query(
    method: str,
    raw_path: str,
    pairs: list[tuple[bytes, bytes]],
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    now: datetime.datetime,
    region: str,
) -> Verified:
    def bad(reason: str, extra: Mapping[str, str] | None = None) -> SignatureError:
        return SignatureError("AuthorizationQueryParametersError", reason, extra)

    params: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = raw_name.decode("utf-8", "replace")
        if name in _AUTH_PARAMS:
            if name in params:
                raise bad(f"The query parameter {name} is given more than once.")
            params[name] = raw_value.decode("utf-8", "replace")
    if any(name not in params for name in _AUTH_PARAMS):
        raise bad(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise bad('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')

    def malformed(reason: str, extra: Mapping[str, str] | None = None) -> SignatureError:
        return bad(f"Error parsing the X-Amz-Credential parameter; {reason}", extra)

    credential = _credential(params["X-Amz-Credential"], region, malformed)
    signed = _signed_headers(
        params["X-Amz-SignedHeaders"],
        lambda reason, extra=None: bad(
            f"Error parsing the X-Amz-SignedHeaders parameter; {reason}"
        ),
    )
    amz_date = params["X-Amz-Date"]
    when = _parse_amz_date(amz_date)
    if when is None:
        raise bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    expires_text = params["X-Amz-Expires"]
    if not re.fullmatch(r"-?\d{1,12}", expires_text):
        raise bad("X-Amz-Expires should be a number")
    expires = int(expires_text)
    if expires < 0:
        raise bad("X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES:
        raise bad(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given "
            "X-Amz-Expires must be less than 604800 seconds"
        )
    if credential.date != amz_date[:8]:
        raise malformed(
            f'Invalid credential date "{credential.date}". This date is not the same as '
            f'X-Amz-Date: "{amz_date[:8]}".'
        )
    if when - now > MAX_SKEW:
        raise SignatureError("AccessDenied", "Request is not valid yet")
    if now > when + datetime.timedelta(seconds=expires):
        raise SignatureError(
            "AccessDenied",
            "Request has expired",
            {
                "X-Amz-Expires": expires_text,
                "Expires": _iso(when + datetime.timedelta(seconds=expires)),
                "ServerTime": _iso(now),
            },
        )
    declared = headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD)
    payload = _payload(declared)
    _check_signed(headers, signed)
    return _check_signature(
        method,
        raw_path,
        canonical_pairs=[(n, v) for n, v in pairs if n != b"X-Amz-Signature"],
        headers=headers,
        signed=signed,
        payload=declared,
        normal_payload=payload,
        credential=credential,
        amz_date=amz_date,
        provided=params["X-Amz-Signature"],
        secret_for=secret_for,
        presigned=True,
    )


def _authorization_fields(text: str) -> dict[str, str]:
    """``Credential=..., SignedHeaders=..., Signature=...``; spaces around commas are fine."""
    fields: dict[str, str] = {}
    for raw_part in text.split(","):
        part = raw_part.strip()
        name, equals, value = part.partition("=")
        name = name.strip()
        if not equals or name not in ("Credential", "SignedHeaders", "Signature"):
            raise SignatureError(
                "AuthorizationHeaderMalformed",
                f'The authorization header is malformed; the authorization component "{part}" '
                "is malformed.",
            )
        if name in fields:
            raise SignatureError(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; {name} is given more than once.",
            )
        fields[name] = value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise SignatureError(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; it needs Credential, SignedHeaders and "
            f"Signature, and has no {', '.join(missing)}.",
        )
    return fields


def _credential(text: str, region: str, malformed: Callable[..., SignatureError]) -> _Credential:
    parts = text.split("/")
    if len(parts) != 5 or not parts[0]:
        raise malformed(
            'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/'
            'aws4_request".'
        )
    access_key, date, scope_region, service, terminator = parts
    if not _SCOPE_DATE.fullmatch(date) or _parse_amz_date(f"{date}T000000Z") is None:
        raise malformed(
            f'incorrect date format "{date}". This date in the credential must be in the '
            'format "yyyyMMdd".'
        )
    if scope_region != region:
        raise malformed(
            f"the region '{scope_region}' is wrong; expecting '{region}'", {"Region": region}
        )
    if service != SERVICE:
        raise malformed(f'incorrect service "{service}". This endpoint belongs to "{SERVICE}".')
    if terminator != TERMINATOR:
        raise malformed(f'incorrect terminal "{terminator}". This endpoint uses "{TERMINATOR}".')
    return _Credential(access_key, date, scope_region)


def _signed_headers(text: str, malformed: Callable[..., SignatureError]) -> list[str]:
    names = [name.strip().lower() for name in text.split(";")]
    if not text.strip() or any(not name for name in names):
        raise malformed(f'the SignedHeaders "{text}" are not a list of header names.')
    return names


def _check_signed(headers: Mapping[str, str], signed: list[str]) -> None:
    """``host`` and every ``x-amz-*`` header sent must be signed (AccessDenied otherwise)."""
    signed_set = set(signed)
    unsigned = sorted(
        name for name in headers if name.startswith("x-amz-") and name not in signed_set
    )
    if "host" not in signed_set:
        unsigned.insert(0, "host")
    if unsigned:
        raise SignatureError(
            "AccessDenied", _UNSIGNED_HEADERS, {"HeadersNotSigned": ", ".join(unsigned)}
        )


def _header_time(headers: Mapping[str, str]) -> tuple[datetime.datetime, str]:
    """The request's time from ``x-amz-date`` (or ``Date``), and its ``amz_date`` form."""
    stamp = headers.get("x-amz-date")
    when: datetime.datetime | None = None
    if stamp is not None:
        when = _parse_amz_date(stamp.strip()) or _parse_http_date(stamp)
    elif headers.get("date") is not None:
        when = _parse_http_date(headers["date"])
    if when is None:
        raise SignatureError(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    if stamp is not None and _AMZ_DATE.fullmatch(stamp.strip()):
        return when, stamp.strip()
    return when, when.strftime(_STAMP)


def _payload(value: str) -> str:
    """Checks an ``x-amz-content-sha256`` value (AWS: ``InvalidArgument`` otherwise)."""
    if value == UNSIGNED_PAYLOAD or value in STREAMING:
        return value
    if _HEX64.fullmatch(value):
        return value.lower()
    raise SignatureError(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a "
        "valid sha256 value.",
        {"ArgumentName": "x-amz-content-sha256", "ArgumentValue": value},
    )


def _check_signature(
    method: str,
    raw_path: str,
    *,
    canonical_pairs: list[tuple[bytes, bytes]],
    headers: Mapping[str, str],
    signed: list[str],
    payload: str,
    normal_payload: str,
    credential: _Credential,
    amz_date: str,
    provided: str,
    secret_for: Callable[[str], str | None],
    presigned: bool,
) -> Verified:
    secret = secret_for(credential.access_key)
    if secret is None:
        raise SignatureError(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            {"AWSAccessKeyId": credential.access_key},
        )
    key = signing_key(secret, credential.date, credential.region)
    query = "&".join(
        f"{name}={value}"
        for name, value in sorted((_encode(n), _encode(v)) for n, v in canonical_pairs)
    )
    scope = credential.scope
    provided_bytes = provided.encode("ascii", "replace")
    first: tuple[str, str] | None = None
    for canonical_request, encoded in _canonical_requests(
        method, raw_path, query, headers, signed, payload
    ):
        string_to_sign = "\n".join(
            (ALGORITHM, amz_date, scope, hashlib.sha256(encoded).hexdigest())
        )
        computed = _hmac_hex(key, string_to_sign)
        if hmac.compare_digest(computed.encode("ascii"), provided_bytes):
            return Verified(
                access_key=credential.access_key,
                amz_date=amz_date,
                scope=scope,
                signing_key=key,
                signature=computed,
                payload=normal_payload,
                presigned=presigned,
            )
        if first is None:
            first = (canonical_request, string_to_sign)
    assert first is not None
    raise SignatureError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        {
            "AWSAccessKeyId": credential.access_key,
            "StringToSign": first[1],
            "SignatureProvided": provided,
            "CanonicalRequest": first[0],
        },
    )


def _canonical_requests(
    method: str,
    raw_path: str,
    query: str,
    headers: Mapping[str, str],
    signed: list[str],
    payload: str,
) -> Iterator[tuple[str, bytes]]:
    """The canonical request, first as botocore builds it, then its other readings.

    The first is the raw path with the header values' text in UTF-8 (what botocore signs).
    Then, where they differ: the path decoded and re-encoded by AWS's rules, and the header
    values' wire bytes as they are (what clients that sign bytes sign).
    """
    path = raw_path or "/"
    paths = [path]
    normal = quote(unquote_to_bytes(_wire_bytes(path)), safe="/~")
    if normal != path:
        paths.append(normal)
    seen: set[bytes] = set()
    for encoding, trim in (("utf-8", _trim_text), ("latin-1", _trim_wire)):
        block = "".join(f"{name}:{trim(headers.get(name, ''))}\n" for name in signed)
        for uri in paths:
            canonical_request = "\n".join((method, uri, query, block, ";".join(signed), payload))
            try:
                encoded = canonical_request.encode(encoding)
            except UnicodeEncodeError:
                continue
            if encoded not in seen:
                seen.add(encoded)
                yield canonical_request, encoded


# ---------------------------------------------------------------------------------------------
# Small pieces


def _parse_query(raw_query: str) -> list[tuple[bytes, bytes]]:
    """The query's pairs, names and values percent-decoded to bytes (``+`` is a space)."""
    pairs: list[tuple[bytes, bytes]] = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(text: str) -> bytes:
    return unquote_to_bytes(_wire_bytes(text.replace("+", " ")))


def _encode(value: bytes) -> str:
    """AWS's URI encoding: unreserved characters stay, every other byte is ``%XX``."""
    return quote(value, safe="-_.~")


def _wire_bytes(text: str) -> bytes:
    """The bytes a server's ISO-8859-1 text came from (UTF-8 if it cannot be that)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _trim_text(value: str) -> str:
    """AWS's Trimall, as botocore does it on text."""
    return " ".join(value.split())


def _trim_wire(value: str) -> str:
    """AWS's Trimall on wire bytes: only spaces and tabs are white space."""
    return _WIRE_SPACES.sub(" ", value.strip(" \t"))


def _parse_amz_date(text: str) -> datetime.datetime | None:
    if not _AMZ_DATE.fullmatch(text):
        return None
    try:  # by hand: strptime takes a lock and reads the locale, 20 times slower
        return datetime.datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
            tzinfo=datetime.UTC,
        )
    except ValueError:
        return None


def _parse_http_date(text: str) -> datetime.datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.astimezone(datetime.UTC)


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decoded_length(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if not re.fullmatch(r"\d{1,19}", value.strip()):
        raise SignatureError(
            "InvalidArgument",
            f"x-amz-decoded-content-length is not a number of bytes: {value!r}.",
            {"ArgumentName": "x-amz-decoded-content-length", "ArgumentValue": value},
        )
    return int(value)


def _find_newline(view: memoryview, start: int, end: int) -> int:
    """Where the next ``\\n`` is, relative to ``start``, looking at most a line ahead."""
    stop = min(end, start + _MAX_LINE + 2)
    return view[start:stop].tobytes().find(b"\n")


def _show(data: bytes) -> str:
    return repr(data[:40].decode("ascii", "replace"))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode("utf-8"), "sha256")


def _hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()
