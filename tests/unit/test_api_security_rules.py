"""Pure parts of the API's defences: cross-site rules, certificates, addresses, the banner."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from speicher.api.auth import cross_site_problem
from speicher.cli.client import CliError
from speicher.cli.trust import KnownHosts, context_for
from speicher.config import Settings
from speicher.daemon import banner, listening_addresses
from speicher.errors import InvalidInput
from speicher.system.ip import parse_addresses
from speicher.tls import CertificateStore, describe, generate, validate


def scope(method: str, headers: dict[str, str], scheme: str = "https") -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in {"host": "nas:8443", **headers}.items()]
    return {"type": "http", "method": method, "scheme": scheme, "headers": raw}


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("GET", {"origin": "http://evil"}, False),  # reading is harmless
        ("POST", {"content-type": "application/json"}, False),
        ("POST", {"content-type": "application/merge-patch+json; charset=utf-8"}, False),
        ("DELETE", {"x-speicher-request": "1"}, False),
        ("POST", {"content-type": "application/x-www-form-urlencoded"}, True),
        ("POST", {"content-type": "text/plain"}, True),
        ("POST", {"content-type": "multipart/form-data; boundary=x"}, True),
        ("DELETE", {}, True),
        ("PUT", {"content-type": "application/json", "origin": "http://evil"}, True),
        ("PATCH", {"content-type": "application/json", "origin": "null"}, True),
        ("POST", {"x-speicher-request": "1", "origin": "https://nas:8444"}, True),
        ("POST", {"x-speicher-request": "1", "origin": "https://nas:8443"}, False),
        ("POST", {"x-speicher-request": "1", "origin": "https://NAS:8443"}, False),
    ],
)
def test_cross_site_rules(method: str, headers: dict[str, str], refused: bool) -> None:
    assert (cross_site_problem(scope(method, headers)) is not None) is refused


def test_a_tls_ending_proxy_may_change_the_scheme_not_the_host() -> None:
    same = scope("POST", {"host": "nas", "origin": "https://nas", "x-speicher-request": "1"})
    assert cross_site_problem({**same, "scheme": "http"}) is None


IP_OUTPUT = json.dumps(
    [
        {
            "ifname": "lo",
            "flags": ["LOOPBACK", "UP"],
            "addr_info": [
                {"family": "inet", "local": "127.0.0.1"},
                {"family": "inet6", "local": "::1"},
            ],
        },
        {
            "ifname": "eth0",
            "flags": ["BROADCAST", "UP", "LOWER_UP"],
            "addr_info": [
                {"family": "inet", "local": "192.0.2.2"},
                {"family": "inet6", "local": "2001:db8::2"},
                {"family": "inet6", "local": "fe80::1"},
            ],
        },
        {"ifname": "eth1", "flags": ["BROADCAST"], "addr_info": [{"local": "198.51.100.1"}]},
    ]
)


def test_parse_addresses_skips_down_links_and_link_local() -> None:
    assert parse_addresses(IP_OUTPUT) == ["127.0.0.1", "::1", "192.0.2.2", "2001:db8::2"]
    assert parse_addresses("") == []


def test_the_banner_names_real_addresses() -> None:
    addresses = parse_addresses(IP_OUTPUT)
    assert listening_addresses("0.0.0.0", addresses) == ["192.0.2.2"]  # noqa: S104
    assert listening_addresses("::", addresses) == ["192.0.2.2", "2001:db8::2"]
    assert listening_addresses("0.0.0.0", ["127.0.0.1"]) == ["127.0.0.1"]  # noqa: S104
    cert, _ = generate(["nas"], [])
    text = banner(Settings(), 8443, 8080, addresses, describe(cert), "pw-1")
    assert "https://192.0.2.2:8443/api/v1" in text
    assert "http://127.0.0.1:8080/api/v1  (plain HTTP, this machine only)" in text
    assert describe(cert).sha256 in text and "localhost" not in text and "pw-1" in text
    open_http = Settings(http_host="0.0.0.0")  # noqa: S104
    assert "plain HTTP, unencrypted" in banner(
        open_http, 8443, 8080, addresses, describe(cert), None
    )
    assert "http://" not in banner(Settings(), 8443, None, addresses, describe(cert), None)


def test_a_generated_certificate_names_the_host() -> None:
    cert, key = generate(["nas", "nas.local", "localhost"], ["192.0.2.2", "127.0.0.1"])
    info = describe(cert)
    assert info.sans == ["nas", "nas.local", "localhost", "127.0.0.1", "::1", "192.0.2.2"]
    assert info.self_signed and info.subject == "CN=nas"
    assert len(info.sha256.split(":")) == 32
    assert validate(cert.decode(), key.decode())[0] == cert


def test_validate_names_every_problem() -> None:
    cert, _ = generate(["a"], [])
    _, other_key = generate(["b"], [])
    with pytest.raises(InvalidInput) as info:
        validate(cert.decode(), other_key.decode())
    assert [(p.field, p.reason) for p in info.value.problems] == [
        ("key", "does not belong to the certificate")
    ]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=6 * 365)
    with pytest.raises(InvalidInput) as info:
        validate(cert.decode(), other_key.decode(), now=lambda: later)
    assert [p.field for p in info.value.problems] == ["certificate", "key"]
    with pytest.raises(InvalidInput) as info:
        validate("x", "y")
    assert [p.field for p in info.value.problems] == ["certificate", "key"]


def test_the_store_writes_key_and_chain_atomically_and_root_only(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "tls", addresses=lambda: ["192.0.2.9"])
    assert store.ensure() is True and store.ensure() is False
    assert (store.path.stat().st_mode & 0o777, store.directory.stat().st_mode & 0o777) == (
        0o600,
        0o700,
    )
    context = store.context()
    first = store.show()
    assert "192.0.2.9" in first.sans
    second = store.regenerate()
    store.reload()
    assert second.sha256 != first.sha256 and store.show() == second
    assert x509.load_pem_x509_certificate(store.public_path.read_bytes())
    assert context.cert_store_stats() is not None
    assert [p.name for p in store.directory.iterdir() if p.name.startswith(".new")] == []


def test_known_hosts_keeps_other_lines(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "speicher" / "known_hosts")
    assert hosts.get("a:1") is None
    hosts.add("a:1", "AA")
    hosts.add("b:2", "BB")
    hosts.add("a:1", "CC")
    assert (hosts.get("a:1"), hosts.get("b:2")) == ("CC", "BB")
    assert hosts.path.stat().st_mode & 0o777 == 0o600


def test_a_missing_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CliError) as info:
        context_for("https://nas:8443", ca=tmp_path / "missing.pem")
    assert info.value.exit_code == 2
