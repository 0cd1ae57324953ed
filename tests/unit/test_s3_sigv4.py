"""Signature Version 4 for S3 (speicher.protocols.s3.sigv4) against real signers.

Requests are signed by botocore (``S3SigV4Auth``, ``S3SigV4QueryAuth``, ``SigV4Auth``) and by
boto3 clients whose requests are caught before they would be sent (no network), and by AWS's
published examples (the S3 API reference's single-chunk, presigned, chunked and trailer
examples, with the example key ``wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY``). The signed
``aws-chunked`` variants, which botocore does not send, are built by a small encoder here,
written from the AWS documentation and checked first against AWS's published chunk
signatures.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

import boto3  # type: ignore[import-untyped]
import botocore  # type: ignore[import-untyped]
import botocore.auth  # type: ignore[import-untyped]
import botocore.awsrequest  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.credentials  # type: ignore[import-untyped]
import pytest

from speicher.protocols.s3.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    ChunkedDecoder,
    PayloadHasher,
    SignatureError,
    Verified,
    verify,
)

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:9000"
TLS_ENDPOINT = "https://127.0.0.1:9000"
AWS_TIME = datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC)
AWS_SCOPE = "20130524/us-east-1/s3/aws4_request"


def noise(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data, the same every run


def secret_for(access_key: str) -> str | None:
    return SK if access_key == AK else None


@dataclass(frozen=True)
class Wire:
    """A request as the S3 server sees it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""

    def with_headers(self, **changes: str | None) -> Wire:
        headers = dict(self.headers)
        for field, value in changes.items():
            name = field.replace("_", "-")
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        return replace(self, headers=headers)


def wire_of(request: Any) -> Wire:
    """An AWSRequest or AWSPreparedRequest as it would arrive (header names lower-case)."""
    parts = urlsplit(request.url)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        lower = name.lower()
        headers[lower] = f"{headers[lower]},{text}" if lower in headers else text
    headers.setdefault("host", parts.netloc)
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    return Wire(request.method, parts.path, parts.query, headers, body or b"")


def url_wire(method: str, url: str, **headers: str) -> Wire:
    parts = urlsplit(url)
    sent = {"host": parts.netloc}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return Wire(method, parts.path, parts.query, sent)


def signed_at(wire: Wire) -> datetime.datetime:
    """The time the signer put in the request."""
    stamp = wire.headers.get("x-amz-date")
    if stamp is None:
        for pair in wire.query.split("&"):
            if pair.startswith("X-Amz-Date="):
                stamp = pair.partition("=")[2]
    assert stamp is not None
    return datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


def check(
    wire: Wire,
    *,
    later: datetime.timedelta = datetime.timedelta(0),
    now: datetime.datetime | None = None,
    region: str = "us-east-1",
) -> Verified | None:
    return verify(
        wire.method,
        wire.path,
        wire.query,
        wire.headers,
        secret_for,
        now if now is not None else signed_at(wire) + later,
        region,
    )


def verified(wire: Wire, **options: Any) -> Verified:
    result = check(wire, **options)
    assert result is not None
    return result


def refused(wire: Wire, code: str, **options: Any) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        check(wire, **options)
    assert caught.value.code == code, caught.value.message
    return caught.value


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    key: str = AK,
    secret: str = SK,
    region: str = "us-east-1",
    unsigned_payload: bool = False,
    signer: type[Any] = botocore.auth.S3SigV4Auth,
) -> Wire:
    """A request signed by botocore's own signer classes."""
    request = botocore.awsrequest.AWSRequest(
        method=method, url=url, data=body, headers=dict(headers or {})
    )
    if unsigned_payload:
        request.context["client_config"] = botocore.config.Config(
            s3={"payload_signing_enabled": False}
        )
    credentials = botocore.credentials.Credentials(key, secret)
    signer(credentials, "s3", region).add_auth(request)
    return wire_of(request)


class _NoBody:
    def stream(self, **_: Any) -> Iterable[bytes]:
        return iter(())


class Client:
    """A boto3 S3 client whose requests are caught where they would go on the wire."""

    def __init__(self, endpoint: str = ENDPOINT, **config: Any) -> None:
        s3 = {"addressing_style": "path", **config.pop("s3", {})}
        self.sent: list[Wire] = []
        self.boto = boto3.client(
            "s3",
            region_name=config.pop("region", "us-east-1"),
            aws_access_key_id=AK,
            aws_secret_access_key=SK,
            endpoint_url=endpoint,
            config=botocore.config.Config(
                signature_version=config.pop("signature_version", "s3v4"),
                s3=s3,
                retries={"max_attempts": 1},
                **config,
            ),
        )
        self.boto.meta.events.register("before-send.s3", self._send)

    def _send(self, request: Any, **_: Any) -> Any:
        self.sent.append(wire_of(request))
        return botocore.awsrequest.AWSResponse(request.url, 200, {}, _NoBody())

    def call(self, operation: str, **params: Any) -> Wire:
        getattr(self.boto, operation)(**params)
        return self.sent[-1]

    def presign(self, operation: str, expires: int = 3600, **params: Any) -> str:
        url: str = self.boto.generate_presigned_url(operation, Params=params, ExpiresIn=expires)
        return url


@pytest.fixture(scope="module")
def client() -> Client:
    return Client()


@pytest.fixture(scope="module")
def tls_client() -> Client:
    return Client(TLS_ENDPOINT, request_checksum_calculation="when_supported")


# ---------------------------------------------------------------------------------------------
# AWS's published examples


def aws_example(authorization: str, **headers: str) -> dict[str, str]:
    signed = {"host": "examplebucket.s3.amazonaws.com", "x-amz-date": "20130524T000000Z"}
    signed.update({name.replace("_", "-"): value for name, value in headers.items()})
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={AK}/{AWS_SCOPE},SignedHeaders="
        + ";".join(sorted(signed))
        + f",Signature={authorization}"
    )
    return signed


EMPTY = hashlib.sha256(b"").hexdigest()

AWS_SINGLE_CHUNK = [
    # (method, raw path, raw query, headers, published signature): the S3 API reference,
    # "Signature Calculations for the Authorization Header: Transferring Payload in a Single
    # Chunk", examples GET Object, PUT Object, GET Bucket Lifecycle, Get Bucket (List Objects).
    ("GET", "/test.txt", "", {"range": "bytes=0-9", "x_amz_content_sha256": EMPTY}, "f0e8bdb8"),
    (
        "PUT",
        "/test%24file.text",
        "",
        {
            "date": "Fri, 24 May 2013 00:00:00 GMT",
            "x_amz_storage_class": "REDUCED_REDUNDANCY",
            "x_amz_content_sha256": hashlib.sha256(b"Welcome to Amazon S3.").hexdigest(),
        },
        "98ad7217",
    ),
    ("GET", "/", "lifecycle", {"x_amz_content_sha256": EMPTY}, "fea454ca"),
    ("GET", "/", "max-keys=2&prefix=J", {"x_amz_content_sha256": EMPTY}, "34b48302"),
]
AWS_SIGNATURES = {
    "f0e8bdb8": "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    "98ad7217": "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    "fea454ca": "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    "34b48302": "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
}


@pytest.mark.parametrize(("method", "path", "query", "headers", "signature"), AWS_SINGLE_CHUNK)
def test_the_aws_single_chunk_examples(
    method: str, path: str, query: str, headers: dict[str, str], signature: str
) -> None:
    sent = aws_example(AWS_SIGNATURES[signature], **headers)
    result = verify(method, path, query, sent, secret_for, AWS_TIME)
    assert result is not None
    assert result.signature == AWS_SIGNATURES[signature]
    assert result.scope == AWS_SCOPE and result.amz_date == "20130524T000000Z"
    assert result.access_key == AK and not result.presigned
    assert result.payload == sent["x-amz-content-sha256"]


def test_the_aws_put_example_as_it_goes_on_the_wire() -> None:
    # AWS's example request line is "PUT test$file.text": the "$" travels raw, and is
    # signed encoded ("/test%24file.text").
    sent = aws_example(
        AWS_SIGNATURES["98ad7217"],
        date="Fri, 24 May 2013 00:00:00 GMT",
        x_amz_storage_class="REDUCED_REDUNDANCY",
        x_amz_content_sha256=hashlib.sha256(b"Welcome to Amazon S3.").hexdigest(),
    )
    assert verify("PUT", "/test$file.text", "", sent, secret_for, AWS_TIME) is not None
    hasher = PayloadHasher(sent["x-amz-content-sha256"])
    hasher.update(b"Welcome to Amazon S3.")
    hasher.check()


def test_the_aws_presigned_example() -> None:
    # "Authenticating Requests: Using Query Parameters", the GET of test.txt for 86400 s.
    url = (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    wire = url_wire("GET", url)
    result = verified(wire, later=datetime.timedelta(hours=23))
    assert result.presigned and result.payload == UNSIGNED_PAYLOAD
    assert result.signature.startswith("aeeed9bb")
    refused(wire, "AccessDenied", later=datetime.timedelta(seconds=86401))


# ---------------------------------------------------------------------------------------------
# botocore and boto3


def test_operations_with_queries(client: Client) -> None:
    key = "dir/a b+c%d~e ü€ 日本.txt"
    wires = [
        client.call("list_objects_v2", Bucket="b", Prefix="a/b", Delimiter="/"),
        client.call("list_objects_v2", Bucket="b", Prefix="a b+c", StartAfter="x=y&z"),
        client.call("list_objects", Bucket="b", Marker="m~ü", EncodingType="url"),
        client.call("create_multipart_upload", Bucket="b", Key=key),
        client.call("upload_part", Bucket="b", Key=key, PartNumber=1, UploadId="x/y+z=", Body=b"p"),
        client.call("put_object", Bucket="b", Key=key, Body=b"hello", Metadata={"k": "v  w"}),
        client.call("get_object", Bucket="b", Key=key, Range="bytes=0-9"),
        client.call(
            "get_object",
            Bucket="b",
            Key="a//b/./c/../d",
            ResponseContentDisposition='attachment; filename="a b.txt"',
            VersionId="v+1/2",
        ),
        client.call("delete_object", Bucket="b", Key=key, VersionId="null"),
        client.call("delete_objects", Bucket="b", Delete={"Objects": [{"Key": key}]}),
        client.call("head_bucket", Bucket="b"),
        client.call("list_buckets"),
        client.call("get_bucket_versioning", Bucket="b"),
    ]
    assert "prefix=a%2Fb" in wires[0].query and "delimiter=%2F" in wires[0].query
    assert wires[3].query == "uploads"
    assert "partNumber=1" in wires[4].query and "uploadId=x%2Fy%2Bz%3D" in wires[4].query
    assert wires[5].path == "/b/dir/a%20b%2Bc%25d~e%20%C3%BC%E2%82%AC%20%E6%97%A5%E6%9C%AC.txt"
    assert wires[7].path == "/b/a//b/./c/../d"
    for wire in wires:
        result = verified(wire)
        assert result.access_key == AK and not result.presigned
        assert result.scope.endswith("/us-east-1/s3/aws4_request")
        assert result.payload == hashlib.sha256(wire.body).hexdigest()  # signed over HTTP
        hasher = PayloadHasher(result.payload)
        hasher.update(wire.body)
        hasher.check()


def test_the_path_is_neither_normalised_nor_decoded(client: Client) -> None:
    wire = client.call("get_object", Bucket="b", Key="a//b/./c/../d%2F")
    assert wire.path == "/b/a//b/./c/../d%252F"
    verified(wire)
    for other in ("/b/a/b/c/d%252F", "/b/a//b/./c/../d%2F", "/b/a//b/./c/../d/"):
        refused(replace(wire, path=other), "SignatureDoesNotMatch")


def test_a_path_signed_encoded_and_sent_raw() -> None:
    # botocore's generic SigV4 signer encodes the path by AWS's rules ("!" -> "%21"); a
    # client may still send the character raw, which names the same key.
    wire = sign(
        "GET",
        f"{ENDPOINT}/b/a!b(c)*",
        headers={"X-Amz-Content-SHA256": EMPTY},
        signer=botocore.auth.SigV4Auth,
    )
    assert wire.path == "/b/a!b(c)*"
    verified(wire)
    verified(replace(wire, path="/b/a%21b%28c%29%2A"))
    refused(replace(wire, path="/b/a!b(c)"), "SignatureDoesNotMatch")


def test_unsigned_payload() -> None:
    wire = sign("PUT", f"{TLS_ENDPOINT}/b/k", b"data", unsigned_payload=True)
    assert wire.headers["x-amz-content-sha256"] == UNSIGNED_PAYLOAD
    assert verified(wire).payload == UNSIGNED_PAYLOAD
    boto = Client(TLS_ENDPOINT, s3={"payload_signing_enabled": False})
    wire = boto.call("list_objects_v2", Bucket="b", Prefix="p")
    assert verified(wire).payload == UNSIGNED_PAYLOAD


def test_a_signed_payload_and_a_tampered_body() -> None:
    body = bytes(range(256)) * 1000
    wire = sign("PUT", f"{ENDPOINT}/b/k", body, {"Content-Type": "application/x-thing"})
    result = verified(wire)
    assert result.payload == hashlib.sha256(body).hexdigest()
    good = PayloadHasher(result.payload)
    for start in range(0, len(body), 7777):
        good.update(memoryview(body)[start : start + 7777])
    good.check()
    assert good.length == len(body)
    bad = PayloadHasher(result.payload)
    bad.update(body[:-1] + b"x")
    with pytest.raises(SignatureError) as caught:
        bad.check()
    assert caught.value.code == "XAmzContentSHA256Mismatch" and caught.value.status == 400
    assert caught.value.extra["ClientComputedContentSHA256"] == result.payload
    short = PayloadHasher(result.payload.upper())
    short.update(body[:100])
    with pytest.raises(SignatureError):
        short.check()
    with pytest.raises(ValueError):
        PayloadHasher(UNSIGNED_PAYLOAD)


def test_wrong_secret_and_unknown_key() -> None:
    error = refused(
        sign("GET", f"{ENDPOINT}/b/k", secret="not-the-secret"), "SignatureDoesNotMatch"
    )
    assert error.status == 403
    assert error.extra["AWSAccessKeyId"] == AK
    assert error.extra["CanonicalRequest"].startswith("GET\n/b/k\n\n")
    assert error.extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    error = refused(sign("GET", f"{ENDPOINT}/b/k", key="AKIDUNKNOWN"), "InvalidAccessKeyId")
    assert error.status == 403 and error.extra["AWSAccessKeyId"] == "AKIDUNKNOWN"


def test_anything_changed_after_signing(client: Client) -> None:
    wire = client.call(
        "put_object", Bucket="b", Key="k", Body=b"body", Metadata={"who": "me"}, ContentType="a/b"
    )
    verified(wire)
    refused(replace(wire, method="POST"), "SignatureDoesNotMatch")
    refused(replace(wire, path="/b/K"), "SignatureDoesNotMatch")
    refused(replace(wire, query="acl"), "SignatureDoesNotMatch")
    refused(wire.with_headers(x_amz_meta_who="you"), "SignatureDoesNotMatch")
    refused(wire.with_headers(content_type="a/c"), "SignatureDoesNotMatch")
    refused(wire.with_headers(host="127.0.0.1:9001"), "SignatureDoesNotMatch")
    listing = client.call("list_objects_v2", Bucket="b", Prefix="a/b", Delimiter="/")
    refused(
        replace(listing, query=listing.query.replace("a%2Fb", "a%2Fc")), "SignatureDoesNotMatch"
    )
    refused(replace(listing, query=listing.query + "&max-keys=1"), "SignatureDoesNotMatch")
    # Another order, or "+" for a space, is the same query.
    reordered = "&".join(reversed(listing.query.split("&")))
    verified(replace(listing, query=reordered))
    spaced = client.call("list_objects_v2", Bucket="b", Prefix="a b")
    assert "prefix=a%20b" in spaced.query
    verified(replace(spaced, query=spaced.query.replace("a%20b", "a+b")))
    # Headers that are not signed do not count, but an unsigned x-amz-* header is refused.
    verified(wire.with_headers(user_agent="other", expect="100-continue"))
    error = refused(wire.with_headers(x_amz_acl="public-read"), "AccessDenied")
    assert error.extra["HeadersNotSigned"] == "x-amz-acl"


def test_clock_skew() -> None:
    wire = sign("GET", f"{ENDPOINT}/b/k")
    for minutes in (-14, 0, 14):
        verified(wire, later=datetime.timedelta(minutes=minutes))
    for minutes in (-16, 16):
        error = refused(wire, "RequestTimeTooSkewed", later=datetime.timedelta(minutes=minutes))
        assert error.status == 403
        assert error.extra["MaxAllowedSkewMilliseconds"] == "900000"


def test_the_date_header_instead_of_x_amz_date() -> None:
    wire = sign("GET", f"{ENDPOINT}/b/k", headers={"Date": "whatever"})
    assert "x-amz-date" not in wire.headers
    when = datetime.datetime.strptime(wire.headers["date"], "%a, %d %b %Y %H:%M:%S -0000").replace(
        tzinfo=datetime.UTC
    )
    result = verified(wire, now=when)
    assert result.amz_date == when.strftime("%Y%m%dT%H%M%SZ")
    refused(wire, "RequestTimeTooSkewed", now=when + datetime.timedelta(minutes=16))
    refused(wire.with_headers(date=None), "AccessDenied", now=when)
    refused(wire.with_headers(date="yesterday"), "AccessDenied", now=when)


def test_region_and_scope() -> None:
    wire = sign("GET", f"{ENDPOINT}/b/k", region="eu-central-1")
    error = refused(wire, "AuthorizationHeaderMalformed")
    assert error.status == 400 and error.extra == {"Region": "us-east-1"}
    assert "'eu-central-1' is wrong; expecting 'us-east-1'" in error.message
    verified(wire, region="eu-central-1")
    # The scope's date must be the request's.
    next_day = (signed_at(wire) + datetime.timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    moved = wire.with_headers(x_amz_date=next_day)
    error = refused(
        moved, "AuthorizationHeaderMalformed", now=signed_at(moved), region="eu-central-1"
    )
    assert "Date is not the same as X-Amz-Date" in error.message


def test_presigned_urls(client: Client) -> None:
    url = client.presign("get_object", Bucket="b", Key="dir/a b+ü", VersionId="v 1")
    wire = url_wire("GET", url)
    result = verified(wire)
    assert result.presigned and result.payload == UNSIGNED_PAYLOAD and result.access_key == AK
    verified(wire, later=datetime.timedelta(seconds=3600))
    error = refused(wire, "AccessDenied", later=datetime.timedelta(seconds=3601))
    assert error.message == "Request has expired" and error.status == 403
    assert error.extra["X-Amz-Expires"] == "3600"
    verified(wire, later=-datetime.timedelta(minutes=14))
    error = refused(wire, "AccessDenied", later=-datetime.timedelta(minutes=16))
    assert error.message == "Request is not valid yet"
    refused(replace(wire, path=wire.path + "x"), "SignatureDoesNotMatch")
    refused(replace(wire, method="PUT"), "SignatureDoesNotMatch")
    refused(
        replace(wire, query=wire.query.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601")),
        "SignatureDoesNotMatch",
    )
    # A header signed into the URL must come with the request.
    put = client.presign("put_object", Bucket="b", Key="k", ContentType="text/plain")
    assert "content-type%3Bhost" in put
    verified(url_wire("PUT", put, content_type="text/plain"))
    refused(url_wire("PUT", put), "SignatureDoesNotMatch")
    refused(url_wire("PUT", put, content_type="text/plain", x_amz_acl="private"), "AccessDenied")
    # x-amz-content-sha256 sent with a presigned request is what it signed.
    low = botocore.awsrequest.AWSRequest(
        method="PUT", url=f"{ENDPOINT}/b/k", headers={"X-Amz-Content-SHA256": EMPTY}
    )
    botocore.auth.S3SigV4QueryAuth(
        botocore.credentials.Credentials(AK, SK), "s3", "us-east-1", expires=60
    ).add_auth(low)
    signed = wire_of(low)
    assert verified(signed).payload == EMPTY
    refused(signed.with_headers(x_amz_content_sha256=UNSIGNED_PAYLOAD), "SignatureDoesNotMatch")


def test_presigned_expiry_limits(client: Client) -> None:
    week = url_wire("GET", client.presign("get_object", 604800, Bucket="b", Key="k"))
    verified(week, later=datetime.timedelta(days=7))
    refused(week, "AccessDenied", later=datetime.timedelta(days=7, seconds=1))
    more = url_wire("GET", client.presign("get_object", 604801, Bucket="b", Key="k"))
    error = refused(more, "AuthorizationQueryParametersError")
    assert "604800" in error.message and error.status == 400
    base = url_wire("GET", client.presign("get_object", 60, Bucket="b", Key="k"))
    for bad in ("X-Amz-Expires=-1", "X-Amz-Expires=soon", "X-Amz-Expires="):
        refused(
            replace(base, query=base.query.replace("X-Amz-Expires=60", bad)),
            "AuthorizationQueryParametersError",
        )
    for name in ("X-Amz-Expires", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Credential"):
        query = "&".join(p for p in base.query.split("&") if not p.startswith(name + "="))
        refused(
            replace(base, query=query), "AuthorizationQueryParametersError", now=signed_at(base)
        )
    for old, new in (
        ("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
        ("us-east-1", "eu-west-1"),
        ("%2Fs3%2F", "%2Fs4%2F"),
        ("aws4_request", "aws5_request"),
    ):
        refused(
            replace(base, query=base.query.replace(old, new, 1)),
            "AuthorizationQueryParametersError",
        )
    wrong_region = url_wire(
        "GET", Client(region="eu-west-1").presign("get_object", Bucket="b", Key="k")
    )
    error = refused(wrong_region, "AuthorizationQueryParametersError")
    assert error.extra == {"Region": "us-east-1"}


def test_signature_version_2_is_refused() -> None:
    v2 = Client(signature_version="s3")
    wire = v2.call("get_object", Bucket="b", Key="k")
    assert wire.headers["authorization"].startswith("AWS AKIA")
    error = refused(wire, "InvalidRequest", now=datetime.datetime.now(datetime.UTC))
    assert error.status == 400 and "AWS4-HMAC-SHA256" in error.message
    url = v2.presign("get_object", Bucket="b", Key="k")
    assert "AWSAccessKeyId=" in url and "Signature=" in url
    refused(url_wire("GET", url), "InvalidRequest", now=datetime.datetime.now(datetime.UTC))


def test_anonymous_requests() -> None:
    anonymous = Client(signature_version=botocore.UNSIGNED)
    for wire in (
        anonymous.call("get_object", Bucket="b", Key="k"),
        anonymous.call("list_objects_v2", Bucket="b", Prefix="x"),
        url_wire("GET", anonymous.presign("get_object", Bucket="b", Key="k")),
    ):
        assert "authorization" not in wire.headers
        assert check(wire, now=datetime.datetime.now(datetime.UTC)) is None


def test_one_mechanism_at_a_time(client: Client) -> None:
    presigned = url_wire("GET", client.presign("get_object", Bucket="b", Key="k"))
    header = sign("GET", f"{ENDPOINT}/b/k")
    both = replace(presigned, headers={**presigned.headers, **header.headers})
    error = refused(both, "InvalidArgument")
    assert error.extra["ArgumentName"] == "Authorization"


def test_missing_and_invalid_content_sha256() -> None:
    wire = sign("GET", f"{ENDPOINT}/b/k")
    error = refused(wire.with_headers(x_amz_content_sha256=None), "InvalidRequest")
    assert error.message == "Missing required header for this request: x-amz-content-sha256"
    generic = sign(
        "PUT",
        f"{ENDPOINT}/b/k",
        b"x",
        {"X-Amz-Content-SHA256": "abc"},
        signer=botocore.auth.SigV4Auth,
    )
    error = refused(generic, "InvalidArgument")
    assert error.extra["ArgumentName"] == "x-amz-content-sha256"
    assert error.extra["ArgumentValue"] == "abc"


def test_host_must_be_signed() -> None:
    wire = sign("GET", f"{ENDPOINT}/b/k")
    auth = wire.headers["authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    error = refused(wire.with_headers(authorization=auth), "AccessDenied")
    assert error.extra["HeadersNotSigned"] == "host"


GOOD = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{date}/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"
)


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("", "InvalidArgument"),
        ("   ", "InvalidArgument"),
        ("Bearer abc", "InvalidArgument"),
        ("AWS4-ECDSA-P256-SHA256 Credential=x", "InvalidArgument"),
        ("aws4-hmac-sha256 Credential=x", "InvalidArgument"),
        ("AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl", "InvalidRequest"),
        ("AWS4-HMAC-SHA256", "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256 ", "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256 garbage", "AuthorizationHeaderMalformed"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{date}/us-east-1/s3/aws4_request",
            "AuthorizationHeaderMalformed",
        ),
        (GOOD.replace(", Signature={sig}", ""), "AuthorizationHeaderMalformed"),
        (
            GOOD.replace("SignedHeaders=host;x-amz-content-sha256;x-amz-date, ", ""),
            "AuthorizationHeaderMalformed",
        ),
        (GOOD.replace("/us-east-1/", "/"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("AKIAIOSFODNN7EXAMPLE/", "/"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("{date}", "2013-05-24"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("{date}", "20131324"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("/s3/", "/ec2/"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("aws4_request", "aws4_requests"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("/us-east-1/", "/us-west-2/"), "AuthorizationHeaderMalformed"),
        (GOOD + ", Signature={sig}", "AuthorizationHeaderMalformed"),
        (GOOD + ", Extra=1", "AuthorizationHeaderMalformed"),
        (
            GOOD.replace("SignedHeaders=host;x-amz-content-sha256;x-amz-date", "SignedHeaders="),
            "AuthorizationHeaderMalformed",
        ),
        (GOOD.replace("host;", "host;;"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("Credential=", "Credential"), "AuthorizationHeaderMalformed"),
        (GOOD.replace("{sig}", "xyz"), "SignatureDoesNotMatch"),
        (GOOD.replace("{sig}", "é" * 64), "SignatureDoesNotMatch"),
        (GOOD.replace("{sig}", "0" * 64), "SignatureDoesNotMatch"),
        (GOOD.replace("host;", ""), "AccessDenied"),
        (GOOD.replace("host;x-amz-content-sha256;x-amz-date", "host"), "AccessDenied"),
        (GOOD.replace("AKIAIOSFODNN7EXAMPLE", "AKIDNOBODY"), "InvalidAccessKeyId"),
    ],
)
def test_malformed_authorization_headers(authorization: str, code: str) -> None:
    wire = sign("GET", f"{ENDPOINT}/b/k")
    date = wire.headers["x-amz-date"][:8]
    good_sig = wire.headers["authorization"].rpartition("Signature=")[2]
    value = authorization.replace("{date}", date).replace("{sig}", good_sig)
    refused(wire.with_headers(authorization=value), code)


def test_spaces_in_the_authorization_header() -> None:
    wire = sign("GET", f"{ENDPOINT}/b/k")
    auth = wire.headers["authorization"]
    assert ", SignedHeaders=" in auth  # botocore's own form
    for spaced in (
        auth.replace(", ", ","),
        auth.replace(", ", " ,  "),
        auth.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256   ") + "  ",
        auth.replace("=", " = "),
    ):
        verified(wire.with_headers(authorization=spaced))


def test_garbage_never_escapes_as_another_exception() -> None:
    rng = random.Random(9)  # noqa: S311 - test data, the same every run
    wire = sign("GET", f"{ENDPOINT}/b/k?prefix=a%2Fb&uploads")
    presigned = url_wire("GET", Client().presign("get_object", Bucket="b", Key="k"))
    alphabet = "AWS4-HMAC-SHA256 Credential=/;,=%&+ \t\x00é€aZ09"
    for _ in range(400):
        auth = list(wire.headers["authorization"])
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(auth))
            action = rng.random()
            if action < 0.4:
                auth[position] = rng.choice(alphabet)
            elif action < 0.7:
                del auth[position]
            else:
                auth.insert(position, rng.choice(alphabet))
        query = list(presigned.query)
        for _ in range(rng.randint(1, 6)):
            query[rng.randrange(len(query))] = rng.choice(alphabet)
        path = "".join(rng.choice("/%zZ.é\x00 ?#") for _ in range(rng.randint(0, 12)))
        for candidate in (
            wire.with_headers(authorization="".join(auth)),
            replace(presigned, query="".join(query)),
            replace(wire, path=path),
            wire.with_headers(x_amz_date="".join(rng.choice(alphabet) for _ in range(16))),
        ):
            try:
                check(candidate, now=signed_at(wire))
            except SignatureError as error:
                assert error.status in (400, 403) and error.message


def test_non_ascii_header_values() -> None:
    # botocore signs the text; http.client sends it as ISO-8859-1 bytes, which the server
    # decodes back to the same text.
    wire = sign("PUT", f"{ENDPOINT}/b/k", b"x", {"x-amz-meta-name": "Müller  café"})
    assert verified(wire).payload == hashlib.sha256(b"x").hexdigest()
    refused(wire.with_headers(x_amz_meta_name="Muller  café"), "SignatureDoesNotMatch")


# ---------------------------------------------------------------------------------------------
# aws-chunked: an encoder written from the AWS documentation, checked against AWS's numbers


def flipped(signature: str) -> str:
    """The signature with its last hex digit changed (to another digit, whatever it was)."""
    return signature[:-1] + ("1" if signature[-1] == "0" else "0")


def ref_signing_key(secret: str, date: str, region: str = "us-east-1") -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def ref_sign(key: bytes, *lines: str) -> str:
    return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()


def ref_chunked(
    data: bytes,
    chunk_size: int,
    *,
    seed: str | None,
    key: bytes,
    amz_date: str,
    scope: str,
    trailers: dict[str, str] | None = None,
) -> tuple[bytes, list[str]]:
    """An aws-chunked body as the AWS documentation describes it; with its signatures.

    ``seed=None`` makes the unsigned form. Trailers come after the final chunk as
    ``name:value\\r\\n`` lines; signed, with ``x-amz-trailer-signature`` last (the AWS SDK
    for Java's order).
    """
    out = bytearray()
    signatures: list[str] = []
    previous = seed
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for piece in pieces:
        if previous is None:
            out += b"%x\r\n" % len(piece)
        else:
            previous = ref_sign(
                key,
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                hashlib.sha256(b"").hexdigest(),
                hashlib.sha256(piece).hexdigest(),
            )
            signatures.append(previous)
            out += b"%x;chunk-signature=%s\r\n" % (len(piece), previous.encode())
        if piece:
            out += piece + b"\r\n"
    if trailers is None:
        out += b"\r\n"
        return bytes(out), signatures
    for name, value in trailers.items():
        out += f"{name}:{value}\r\n".encode()
    if previous is not None:
        canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailers.items()))
        signature = ref_sign(
            key,
            "AWS4-HMAC-SHA256-TRAILER",
            amz_date,
            scope,
            previous,
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
        signatures.append(signature)
        out += f"x-amz-trailer-signature:{signature}\r\n".encode()
    out += b"\r\n"
    return bytes(out), signatures


def decode(decoder: ChunkedDecoder, body: bytes, piece: int) -> tuple[bytes, dict[str, str]]:
    out = bytearray()
    for start in range(0, len(body), piece):
        out += decoder.feed(body[start : start + piece])
    return bytes(out), decoder.finish()


AWS_CHUNKED_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
}
AWS_CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
AWS_TRAILER_CHUNK_SIGNATURES = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
]


def aws_chunked_example() -> tuple[Verified, bytes]:
    """The S3 API reference's "Example: PUT Object" in 64 KiB chunks, verified."""
    headers = {
        **AWS_CHUNKED_HEADERS,
        "content-length": "66824",
        "x-amz-content-sha256": STREAMING_SIGNED,
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={AK}/{AWS_SCOPE},SignedHeaders=content-encoding;"
            "content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
            "x-amz-storage-class,"
            "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        ),
    }
    result = verify("PUT", "/examplebucket/chunkObject.txt", "", headers, secret_for, AWS_TIME)
    assert result is not None
    body, signatures = ref_chunked(
        b"a" * 66560,
        65536,
        seed=result.signature,
        key=ref_signing_key(SK, "20130524"),
        amz_date=result.amz_date,
        scope=result.scope,
    )
    assert signatures == AWS_CHUNK_SIGNATURES  # the encoder is AWS's
    assert len(body) == 66824  # the example's Content-Length
    return result, body


def test_the_aws_chunked_example() -> None:
    result, body = aws_chunked_example()
    assert result.signature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    assert result.payload == STREAMING_SIGNED
    assert result.signing_key == ref_signing_key(SK, "20130524")
    for piece in (1, 7, 100_003, len(body)):
        data, trailers = decode(ChunkedDecoder(result, "66560"), body, piece)
        assert data == b"a" * 66560 and trailers == {}


def test_the_aws_trailer_example() -> None:
    # "Signature calculations for trailing headers": the seed and the three chunk signatures
    # are AWS's published ones. The page's trailer signature (63bddb24...) is not what the
    # string to sign it describes gives; d81f82fc... is, with the trailer hashed as
    # "x-amz-checksum-crc32c:sOO8/Q==\n" (as the AWS SDK for Java signs it).
    headers = {
        **AWS_CHUNKED_HEADERS,
        "x-amz-content-sha256": STREAMING_SIGNED_TRAILER,
        "x-amz-trailer": "x-amz-checksum-crc32c",
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={AK}/{AWS_SCOPE},SignedHeaders=content-encoding;host;"
            "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;"
            "x-amz-trailer,"
            "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        ),
    }
    result = verify("PUT", "/examplebucket/chunkObject.txt", "", headers, secret_for, AWS_TIME)
    assert result is not None and result.payload == STREAMING_SIGNED_TRAILER
    body, signatures = ref_chunked(
        b"a" * 66560,
        65536,
        seed=result.signature,
        key=ref_signing_key(SK, "20130524"),
        amz_date=result.amz_date,
        scope=result.scope,
        trailers={"x-amz-checksum-crc32c": "sOO8/Q=="},
    )
    assert signatures[:3] == AWS_TRAILER_CHUNK_SIGNATURES
    trailer_signature = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    assert signatures[3] == trailer_signature
    for piece in (1, 7, 100_003):
        decoder = ChunkedDecoder(result, "66560", "x-amz-checksum-crc32c")
        data, trailers = decode(decoder, body, piece)
        assert data == b"a" * 66560 and trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    # The page's own layout: an empty line after the final chunk, "\n" between the trailer
    # lines, no closing CRLF.
    final = b"0;chunk-signature=" + AWS_TRAILER_CHUNK_SIGNATURES[2].encode() + b"\r\n"
    head = body[: body.index(final) + len(final)]
    page = (
        head
        + b"\r\nx-amz-checksum-crc32c:sOO8/Q==\nx-amz-trailer-signature:"
        + trailer_signature.encode()
    )
    data, trailers = decode(ChunkedDecoder(result, "66560", "x-amz-checksum-crc32c"), page, 4096)
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    for wrong in (body.replace(b"sOO8/Q==", b"sOO8/Q=A"), body.replace(b"d81f82fc", b"d81f82fd")):
        with pytest.raises(SignatureError) as caught:
            decode(ChunkedDecoder(result, "66560", "x-amz-checksum-crc32c"), wrong, 1000)
        assert caught.value.code == "SignatureDoesNotMatch"


def botocore_chunked(tls_client: Client, body: bytes, **params: Any) -> tuple[Wire, Verified]:
    wire = tls_client.call("put_object", Bucket="b", Key="big file", Body=body, **params)
    result = verified(wire)
    assert result.payload == STREAMING_UNSIGNED_TRAILER
    assert wire.headers["content-encoding"] == "aws-chunked"
    return wire, result


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 3 * 1024 * 1024 + 5])
def test_botocore_unsigned_trailer_bodies(tls_client: Client, size: int) -> None:
    data = noise(size, size)
    wire, result = botocore_chunked(tls_client, data)
    assert wire.headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    for piece in (1, 7, 100_003):
        if piece == 1 and size > 1024 * 1024:
            continue  # a byte at a time through megabytes proves nothing more
        decoder = ChunkedDecoder(
            result, wire.headers["x-amz-decoded-content-length"], wire.headers["x-amz-trailer"]
        )
        decoded, trailers = decode(decoder, wire.body, piece)
        assert decoded == data
        assert trailers == {"x-amz-checksum-crc32": crc}


def test_botocore_sha256_trailer_streams_through(tls_client: Client) -> None:
    data = noise(1, 2 * 1024 * 1024 + 3)
    wire, result = botocore_chunked(tls_client, data, ChecksumAlgorithm="SHA256")
    decoder = ChunkedDecoder(
        result, wire.headers["x-amz-decoded-content-length"], wire.headers["x-amz-trailer"]
    )
    half = len(wire.body) // 2
    first = decoder.feed(wire.body[:half])
    assert len(first) > half - 200  # unsigned data is not held back
    rest = decoder.feed(wire.body[half:])
    assert first + rest == data
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert decoder.finish() == {"x-amz-checksum-sha256": expected}


def test_botocore_unsigned_trailer_errors(tls_client: Client) -> None:
    data = noise(2, 100_000)
    wire, result = botocore_chunked(tls_client, data)
    length, trailer = wire.headers["x-amz-decoded-content-length"], wire.headers["x-amz-trailer"]

    def fails(body: bytes, code: str, *, decoded: str = length, declared: str = trailer) -> None:
        decoder = ChunkedDecoder(result, decoded, declared)
        with pytest.raises(SignatureError) as caught:
            decode(decoder, body, 9999)
        assert caught.value.code == code, caught.value.message
        with pytest.raises(SignatureError):  # and it stays failed
            decoder.feed(b"more")

    end = wire.body.index(b"\r\n0\r\n") + 2
    for cut in (0, 1, 5, 7, 500, end - 2, end - 1, end):
        fails(wire.body[:cut], "IncompleteBody")
    fails(wire.body, "IncompleteBody", decoded=str(len(data) + 1))
    fails(wire.body, "IncompleteBody", decoded=str(len(data) - 1))
    fails(wire.body, "MalformedTrailerError", declared="x-amz-checksum-crc32c")
    fails(wire.body, "MalformedTrailerError", declared="x-amz-checksum-crc32,x-amz-checksum-sha1")
    fails(
        wire.body.replace(b"x-amz-checksum-crc32:", b"x-amz-checksum-crc32 "),
        "MalformedTrailerError",
    )
    size_line = wire.body[: wire.body.index(b"\r\n")]
    for bad in (b"zz", b"-1", b"", b"0x10", b"1" * 17, b"18 6a0"):
        fails(bad + wire.body[len(size_line) :], "IncompleteBody")
    fails(b"%x" % (len(data) - 1) + wire.body[len(size_line) :], "IncompleteBody")
    fails(wire.body + b"x", "IncompleteBody")
    fails(b"1" * 10_000, "IncompleteBody")  # no line end in sight
    with pytest.raises(SignatureError) as caught:
        ChunkedDecoder(result, "ten")
    assert caught.value.code == "InvalidArgument"


def streaming_request(
    payload: str, data: bytes, trailer: str | None = None
) -> tuple[Wire, Verified]:
    """A streaming PUT whose seed signature botocore makes."""
    headers = {
        "X-Amz-Content-SHA256": payload,
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
    }
    if trailer is not None:
        headers["X-Amz-Trailer"] = trailer
    wire = sign("PUT", f"{ENDPOINT}/b/chunked", headers=headers, signer=botocore.auth.SigV4Auth)
    result = verified(wire)
    assert result.payload == payload
    return wire, result


def test_signed_chunks_of_any_size() -> None:
    data = noise(3, 300_001)
    wire, result = streaming_request(STREAMING_SIGNED, data)
    key = ref_signing_key(SK, result.scope[:8])
    for chunk_size in (8192, 65536, 150_000, 300_001, 1_000_000):
        body, _ = ref_chunked(
            data,
            chunk_size,
            seed=result.signature,
            key=key,
            amz_date=result.amz_date,
            scope=result.scope,
        )
        for piece in (7, 100_003):
            decoder = ChunkedDecoder(result, wire.headers["x-amz-decoded-content-length"])
            assert decode(decoder, body, piece) == (data, {})
    # A signed chunk comes out whole once its signature is checked, and not before.
    body, _ = ref_chunked(
        data, 65536, seed=result.signature, key=key, amz_date=result.amz_date, scope=result.scope
    )
    decoder = ChunkedDecoder(result)
    header = body.index(b"\r\n") + 2
    assert decoder.feed(body[: header + 65535]) == b""
    assert decoder.feed(body[header + 65535 : header + 65536]) == data[:65536]


def test_signed_chunk_errors() -> None:
    data = noise(4, 200_000)
    _, result = streaming_request(STREAMING_SIGNED, data)
    key = ref_signing_key(SK, result.scope[:8])
    body, signatures = ref_chunked(
        data, 65536, seed=result.signature, key=key, amz_date=result.amz_date, scope=result.scope
    )

    def fails(broken: bytes, code: str, decoded: str | None = str(len(data))) -> bytes:
        decoder = ChunkedDecoder(result, decoded)
        out = bytearray()
        with pytest.raises(SignatureError) as caught:
            for start in range(0, len(broken), 4096):
                out += decoder.feed(broken[start : start + 4096])
            decoder.finish()
        assert caught.value.code == code, caught.value.message
        return bytes(out)

    # Truncated anywhere before the final chunk's line ends.
    for cut in (0, 1, 90, 1000, 65536, len(body) // 2, len(body) - 90, len(body) - 3):
        fails(body[:cut], "IncompleteBody")
    assert decode(ChunkedDecoder(result), body[:-2], 100) == (data, {})  # no closing CRLF
    # A wrong signature, tampered data, chunks in another order: the chunks before are out,
    # nothing of the bad one is.
    out = fails(
        body.replace(signatures[1].encode(), flipped(signatures[1]).encode()),
        "SignatureDoesNotMatch",
    )
    assert out == data[:65536]
    second = body.index(signatures[1].encode()) + 66
    out = fails(
        body[: second + 10] + bytes([body[second + 10] ^ 1]) + body[second + 11 :],
        "SignatureDoesNotMatch",
    )
    assert out == data[:65536]
    swapped = (
        body.replace(signatures[0].encode(), b"X" * 64)
        .replace(signatures[1].encode(), signatures[0].encode())
        .replace(b"X" * 64, signatures[1].encode())
    )
    fails(swapped, "SignatureDoesNotMatch")
    fails(body.replace(b";chunk-signature=" + signatures[2].encode(), b""), "SignatureDoesNotMatch")
    fails(body.replace(signatures[3].encode(), b"0" * 64), "SignatureDoesNotMatch")  # final chunk
    fails(b"zz" + body[body.index(b";") :], "IncompleteBody")
    fails(body[: len(body) - 2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n", "MalformedTrailerError")
    fails(body, "IncompleteBody", decoded=str(len(data) + 1))
    big = ChunkedDecoder(result, max_signed_chunk=65535)
    with pytest.raises(SignatureError) as caught:
        big.feed(body[:200])
    assert caught.value.code == "InvalidArgument"


def test_signed_trailers() -> None:
    data = noise(5, 100_000)
    checksum = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    _, result = streaming_request(STREAMING_SIGNED_TRAILER, data, "x-amz-checksum-crc32")
    key = ref_signing_key(SK, result.scope[:8])

    def body_with(trailers: dict[str, str]) -> bytes:
        body, _ = ref_chunked(
            data,
            65536,
            seed=result.signature,
            key=key,
            amz_date=result.amz_date,
            scope=result.scope,
            trailers=trailers,
        )
        return body

    body = body_with({"x-amz-checksum-crc32": checksum})
    for piece in (1, 7, 100_003):
        decoder = ChunkedDecoder(result, str(len(data)), "x-amz-checksum-crc32")
        assert decode(decoder, body, piece) == (data, {"x-amz-checksum-crc32": checksum})
    no_end = body[:-2]
    assert decode(ChunkedDecoder(result, None, "x-amz-checksum-crc32"), no_end, 999)[1] == {
        "x-amz-checksum-crc32": checksum
    }

    def fails(broken: bytes, code: str, declared: str | None = "x-amz-checksum-crc32") -> None:
        with pytest.raises(SignatureError) as caught:
            decode(ChunkedDecoder(result, str(len(data)), declared), broken, 5000)
        assert caught.value.code == code, caught.value.message

    fails(body.replace(checksum.encode(), b"AAAAAA=="), "SignatureDoesNotMatch")
    signature_line = body[body.index(b"x-amz-trailer-signature") :]
    fails(body.replace(signature_line, b"\r\n"), "SignatureDoesNotMatch")
    fails(
        body_with({"x-amz-checksum-crc32": checksum, "x-amz-meta-x": "y"}), "MalformedTrailerError"
    )
    fails(body_with({}), "MalformedTrailerError")
    fails(body_with({"x-amz-checksum-sha1": "AAAA"}), "MalformedTrailerError")
    several = {"x-amz-checksum-sha256": "b", "x-amz-checksum-crc32": checksum}
    assert (
        decode(
            ChunkedDecoder(result, None, "x-amz-checksum-sha256, x-amz-checksum-crc32"),
            body_with(several),
            777,
        )[1]
        == several
    )
    assert decode(ChunkedDecoder(result), body_with(several), 777)[1] == several


def test_unsigned_trailer_from_the_reference_encoder() -> None:
    data = noise(6, 70_000)
    _, result = streaming_request(STREAMING_UNSIGNED_TRAILER, data, "x-amz-checksum-crc32c")
    body, signatures = ref_chunked(
        data,
        16384,
        seed=None,
        key=b"",
        amz_date="",
        scope="",
        trailers={"x-amz-checksum-crc32c": "abc="},
    )
    assert signatures == []
    decoder = ChunkedDecoder(result, str(len(data)), "x-amz-checksum-crc32c")
    assert decode(decoder, body, 7) == (data, {"x-amz-checksum-crc32c": "abc="})
    with pytest.raises(ValueError):
        ChunkedDecoder(replace(result, payload=UNSIGNED_PAYLOAD))


def test_key_encoding_matches_botocore(client: Client) -> None:
    # The path the server gets is botocore's encoding of the key, which is what it signed.
    for key in ("plain", "sp ace", "plus+sign", "per%cent", "tilde~", "ünï", "a/b/c", "q?x#y&z=w"):
        wire = client.call("head_object", Bucket="b", Key=key)
        assert wire.path == "/b/" + quote(key.encode(), safe="/~")
        verified(wire)
