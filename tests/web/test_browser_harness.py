"""The browser harness itself, against a tiny HTTPS server of its own: the web console's
end-to-end tests stand on what this proves (Debian's Chromium starts and ends, speaks German or
English, takes the daemon's self-signed certificate, fills forms, uploads, downloads and leaves
screenshots)."""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import html
import ipaddress
import os
import ssl
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser import LOCALES, Browser, Locale, artifacts_dir, processes_of, shot
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

DOWNLOAD = bytes(range(256)) * 512 + os.urandom(4096)  # 132 KiB, every byte value
PAGE_HEIGHT = 1800  # taller than the viewport, so a full-page shot shows it is one


@dataclass
class Seen:
    """What the server received, request by request."""

    headers: list[dict[str, str]] = field(default_factory=list)
    forms: list[dict[str, list[str]]] = field(default_factory=list)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


FORM_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Harness</title></head>
<body style="font-family: DejaVu Sans, sans-serif">
<h1>Accept-Language: <span id="accept">{accept}</span></h1>
<form method="post" action="/submit">
  <label for="name">Name</label> <input id="name" name="name" required>
  <label for="size">Größe</label>
  <select id="size" name="size"><option>klein</option><option>groß</option></select>
  <label><input type="checkbox" name="smb" value="on"> SMB</label>
  <button type="submit">Speichern</button>
</form>
<form method="post" action="/upload" enctype="multipart/form-data">
  <label for="file">Datei</label> <input id="file" type="file" name="upload">
  <button type="submit">Hochladen</button>
</form>
<p><a id="download" href="/download">Bericht herunterladen</a></p>
<div style="height: {height}px; background: linear-gradient(#fff, #9cf)">tall</div>
<p id="bottom">Ende der Seite</p>
</body></html>
"""


def make_handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a connection Chromium opens and never uses ends by itself

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(
            self, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> None:
            with seen.lock:
                seen.headers.append({k.lower(): v for k, v in self.headers.items()})

        def do_GET(self) -> None:
            self._record()
            if self.path == "/download":
                self._send(
                    DOWNLOAD,
                    "application/octet-stream",
                    {"Content-Disposition": 'attachment; filename="bericht.bin"'},
                )
            elif self.path == "/":
                accept = self.headers.get("Accept-Language", "")
                page = FORM_PAGE.format(
                    lang=html.escape(accept.split(",")[0][:2]),
                    accept=html.escape(accept),
                    height=PAGE_HEIGHT,
                )
                self._send(page.encode(), "text/html; charset=utf-8")
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            self._record()
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/submit":
                form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
                with seen.lock:
                    seen.forms.append(form)
                text = f'<p id="done">Gespeichert: {html.escape(form["name"][0])}</p>'
                self._send(text.encode(), "text/html; charset=utf-8", {"Set-Cookie": "sid=1"})
            elif self.path == "/upload":
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
                for part in message.iter_parts():
                    payload = part.get_payload(decode=True)
                    assert isinstance(payload, bytes)
                    with seen.lock:
                        seen.uploads.append((part.get_filename() or "", payload))
                self._send(b'<p id="done">Hochgeladen</p>', "text/html; charset=utf-8")
            else:
                self.send_error(404)

    return Handler


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no browser trusts, as the daemon's own is."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "speicher-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Server:
    url: str
    seen: Seen


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    seen = Seen()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(seen))
    # the handshake happens in the request's own thread, so a connection that Chromium opens
    # ahead and never uses cannot block the accept loop
    httpd.socket = context.wrap_socket(
        httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield Server(f"https://127.0.0.1:{httpd.server_address[1]}", seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is no PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_it_is_debians_chromium(chromium: Browser) -> None:
    # Playwright 1.64 was made for Chromium 156; Debian's security updates move chromium on by
    # a major version every few weeks (no older one stays in the archive), and Playwright drives
    # newer ones too. If a newer one breaks it, move the Playwright pin to the release made for it.
    assert int(chromium.version.split(".")[0]) >= 156
    exes = {os.readlink(f"/proc/{pid}/exe") for pid in processes_of(chromium.home)}
    assert exes == {"/usr/lib/chromium/chromium", "/usr/lib/chromium/chrome_crashpad_handler"}


def test_the_certificate_is_refused_without_the_harness(chromium: Browser, server: Server) -> None:
    """The server's certificate is as untrusted as the daemon's: only new_page() accepts it."""
    context = chromium.browser.new_context()
    try:
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            context.new_page().goto(server.url)
    finally:
        context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_accept_language_form_and_screenshot(
    chromium: Browser, server: Server, locale: Locale
) -> None:
    page = chromium.new_page(locale, base_url=server.url)
    page.goto("/")
    sent = server.seen.headers[-1]
    assert sent["accept-language"].split(",")[0] == locale
    assert "cookie" not in sent, "every new_page() starts with no cookies"
    expect(page.locator("#accept")).to_have_text(sent["accept-language"])
    assert page.evaluate("navigator.language") == locale

    before = shot(page, f"harness/{locale}-form")
    width, height = png_size(before)
    assert width == 1280
    assert height > PAGE_HEIGHT, "a full-page screenshot, not just the viewport"

    page.get_by_label("Name").fill(f"Müller & Söhne {locale}")
    page.get_by_label("Größe").select_option("groß")
    page.get_by_label("SMB").check()
    page.get_by_role("button", name="Speichern").click()
    expect(page.locator("#done")).to_have_text(f"Gespeichert: Müller & Söhne {locale}")
    assert server.seen.forms[-1] == {
        "name": [f"Müller & Söhne {locale}"],
        "size": ["groß"],
        "smb": ["on"],
    }
    assert page.context.cookies()[0]["name"] == "sid"
    after = shot(page, f"harness/{locale}-submitted")
    assert png_size(after)[1] >= 800  # the viewport, at the least
    page.context.close()


def test_upload(chromium: Browser, server: Server, tmp_path: Path) -> None:
    content = os.urandom(300_000) + "Prüfbericht\n".encode()
    source = tmp_path / "Prüfbericht 2026.bin"
    source.write_bytes(content)
    page = chromium.new_page("de-DE", base_url=server.url)
    page.goto("/")
    page.get_by_label("Datei").set_input_files(source)
    page.get_by_role("button", name="Hochladen").click()
    expect(page.locator("#done")).to_have_text("Hochgeladen")
    filename, received = server.seen.uploads[-1]
    assert filename == source.name
    assert received == content
    page.context.close()


def test_download(chromium: Browser, server: Server, tmp_path: Path) -> None:
    page = chromium.new_page("en-US", base_url=server.url)
    page.goto("/")
    with page.expect_download() as info:
        page.get_by_role("link", name="Bericht herunterladen").click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == "bericht.bin"
    download.save_as(tmp_path / download.suggested_filename)
    assert (tmp_path / "bericht.bin").read_bytes() == DOWNLOAD
    page.context.close()


def test_screenshot_names_stay_in_the_artifacts_folder(chromium: Browser) -> None:
    page = chromium.new_page()
    for bad in ("../escape", "/etc/x", "a/../../b", "", "with space"):
        with pytest.raises(ValueError, match="bad screenshot name"):
            shot(page, bad)
    assert not (artifacts_dir().parent / "escape.png").exists()
    page.context.close()
