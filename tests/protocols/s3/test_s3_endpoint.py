"""The S3 endpoint's own settings: HTTPS with the daemon's certificate (``s3_tls``) and
virtual-hosted-style addressing (``s3_domain``), with requests signed by botocore's signer as
AWS SDKs sign them. A daemon of the module's own."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import botocore.auth  # type: ignore[import-untyped]
import botocore.awsrequest  # type: ignore[import-untyped]
import botocore.credentials  # type: ignore[import-untyped]
import httpx
import pytest

from conftest import _base
from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system

DOMAIN = "s3.nas.test"


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon(_base())
    d.env["SPEICHER_S3_TLS"] = "true"
    d.env["SPEICHER_S3_DOMAIN"] = DOMAIN
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def key(daemon: Daemon) -> dict[str, str]:
    make_pool(daemon)
    make_user(daemon, "alice")
    make_share(daemon, "media", {"alice": "rw"}, s3=True)
    r = daemon.api.post("/users/alice/s3-keys")
    assert r.status_code == 201, r.text
    made: dict[str, str] = r.json()
    return made


def signed(key: dict[str, str], method: str, url: str, body: bytes = b"") -> Any:
    """A request signed as boto3 signs it (header SigV4, payload hash)."""
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body)
    credentials = botocore.credentials.Credentials(key["access_key"], key["secret"])
    botocore.auth.S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    return request


def send(daemon: Daemon, request: Any) -> httpx.Response:
    """Send to the daemon on 127.0.0.1 whatever host the URL names; the certificate is the
    daemon's own (its names are not the test's made-up domain)."""
    context = ssl.create_default_context(cafile=str(daemon.state_dir / "tls" / "cert.pem"))
    context.check_hostname = False
    url = httpx.URL(request.url)
    with httpx.Client(verify=context) as client:
        return client.request(
            request.method,
            url.copy_with(host="127.0.0.1"),
            headers={**dict(request.headers.items()), "host": url.netloc.decode()},
            content=request.body or b"",
        )


def test_https_with_the_daemons_certificate(daemon: Daemon, key: dict[str, str]) -> None:
    url = f"https://127.0.0.1:{daemon.s3_port}/media/over-tls.txt"
    assert send(daemon, signed(key, "PUT", url, b"over TLS")).status_code == 200
    r = send(daemon, signed(key, "GET", url))
    assert (r.status_code, r.content) == (200, b"over TLS")
    with pytest.raises(httpx.HTTPError):  # no plain HTTP on the S3 port now
        httpx.get(f"http://127.0.0.1:{daemon.s3_port}/media/over-tls.txt", timeout=5)


def test_virtual_hosted_style(daemon: Daemon, key: dict[str, str]) -> None:
    base = f"https://media.{DOMAIN}:{daemon.s3_port}"
    put = send(daemon, signed(key, "PUT", f"{base}/vh/a.txt", b"virtual"))
    assert put.status_code == 200, put.text
    r = send(daemon, signed(key, "GET", f"{base}/vh/a.txt"))
    assert (r.status_code, r.content) == (200, b"virtual")
    listed = send(daemon, signed(key, "GET", f"{base}/?list-type=2&prefix=vh%2F"))
    assert listed.status_code == 200 and "<Key>vh/a.txt</Key>" in listed.text, listed.text
    # the same object path-style, on the same port
    path_style = f"https://127.0.0.1:{daemon.s3_port}/media/vh/a.txt"
    assert send(daemon, signed(key, "GET", path_style)).content == b"virtual"
    missing = send(daemon, signed(key, "GET", f"https://nope.{DOMAIN}:{daemon.s3_port}/x"))
    assert missing.status_code == 404 and "<Code>NoSuchBucket</Code>" in missing.text
