"""The ransomware signals on records as the audit log gives them: attacks found, office work
not (the whole system is in tests/ransomware)."""

from __future__ import annotations

import io
import os
import random
import zipfile

from speicher.audit.records import Record
from speicher.ransomware.signals import (
    Detector,
    Finding,
    Thresholds,
    entropy,
    looks_random,
    marked_extension,
)

CANARY = "/!0-canary.docx"


class World:
    """Files as the samplers see them: now, and in the newest snapshot."""

    def __init__(self) -> None:
        self.now: dict[str, bytes] = {}
        self.before: dict[str, bytes] = {}
        self.canary_changed = True
        self.t = 1_000_000.0
        self.detector = Detector(
            lambda share: Thresholds() if share == "docs" else None,
            lambda _share, path: path == CANARY,
            lambda _share, _path: self.canary_changed,
            lambda _share, path: self.now.get(path),
            lambda _share, path: self.before.get(path),
        )
        self.findings: list[Finding] = []

    def op(
        self, operation: str, path: str, target: str = "", size: int = 4096, user: str = "alice",
        share: str = "docs", dt: float = 0.05, outcome: str = "ok",
    ) -> Finding | None:  # fmt: skip
        self.t += dt
        r = Record(self.t, "file", "smb", user, "10.0.0.5", share, operation, path, target,
                   size, outcome)  # fmt: skip
        found = self.detector.observe(r)
        if found is not None:
            self.findings.append(found)
            self.detector.forget(user)
        return found


def text(n: int = 4096) -> bytes:
    words = b"Angebot Rechnung Kunde Lieferung Betrag Summe Datum the and of to ".split()
    rng = random.Random(n)  # noqa: S311 - text to look at, not a secret
    out = b" ".join(rng.choice(words) for _ in range(n))
    return out[:n]


def docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", os.urandom(3000).hex())
    return buf.getvalue()


def test_entropy_tells_random_from_text_and_short_samples_say_nothing() -> None:
    assert entropy(b"") == 0.0
    assert entropy(bytes(range(256)) * 16) == 8.0
    assert looks_random(os.urandom(4096)) is True
    assert looks_random(os.urandom(600)) is True
    assert looks_random(text()) is False
    assert looks_random(bytes(4096)) is False
    assert looks_random(os.urandom(100)) is None


def test_the_extensions_a_rename_marks() -> None:
    assert marked_extension("/a/report.docx", "/a/report.docx.locked") == "locked"
    assert marked_extension("/a/report.docx", "/a/report.LOCKED") == "locked"
    assert marked_extension("/a/report.docx", "/b/report.docx.locked") is None  # moved
    assert marked_extension("/a/report.docx", "/a/~WRL0002.tmp") is None  # Word's save
    assert marked_extension("/a/photo.jpg.part", "/a/photo.jpg") is None  # a download
    assert marked_extension("/a/.x.abc123", "/a/x") is None  # rsync
    assert marked_extension("/a/report.docx", "/a/Report 2026.docx") is None


def attack_in_place(w: World, files: int, ext: str = "locked") -> None:
    """Each file: opened, encrypted in place, renamed (most ransomware families)."""
    for i in range(files):
        path = f"/sales/offer-{i}.txt"
        w.before[path] = w.now[path] = text()
    for i in range(files):
        path = f"/sales/offer-{i}.txt"
        w.now[path] = os.urandom(4096)
        if w.op("open_write", path):
            return
        w.now[f"{path}.{ext}"] = w.now.pop(path)
        if w.op("rename", path, f"{path}.{ext}"):
            return


def test_an_attack_in_place_is_found_at_the_tenth_file() -> None:
    w = World()
    attack_in_place(w, 50)
    assert len(w.findings) == 1
    found = w.findings[0]
    assert found.signal in ("overwrites", "renames")
    assert found.user == "alice" and found.address == "10.0.0.5" and found.share == "docs"
    assert len(found.paths) == 10
    assert found.paths[0] == "/sales/offer-0.txt"


def test_renames_alone_are_found() -> None:
    w = World()
    for i in range(9):
        assert w.op("rename", f"/p/{i}.jpg", f"/p/{i}.jpg.crypt") is None
    found = w.op("rename", "/p/9.jpg", "/p/9.jpg.crypt")
    assert found is not None and found.signal == "renames" and ".crypt" in found.detail


def test_copies_with_deleted_originals_are_found() -> None:
    w = World()
    found = None
    for i in range(10):
        assert w.op("create", f"/p/{i}.xlsx.enc") is None
        found = w.op("delete", f"/p/{i}.xlsx")
    assert found is not None and found.signal == "deletes"


def test_a_changed_canary_is_found_at_once_and_an_untouched_one_is_not() -> None:
    w = World()
    w.canary_changed = False
    assert w.op("open_write", CANARY) is None  # Word opened it and closed it again
    w.canary_changed = True
    found = w.op("open_write", CANARY)
    assert found is not None and found.signal == "canary" and found.paths == (CANARY,)
    assert w.op("rename", CANARY, CANARY + ".locked") is not None
    assert w.op("delete", CANARY) is not None
    assert w.op("copy", CANARY, "/copy.docx") is None  # a copy of it changes nothing


def test_other_shares_failures_and_slow_changes_do_not_count() -> None:
    w = World()
    for i in range(30):
        assert w.op("rename", f"/{i}.txt", f"/{i}.txt.locked", share="other") is None
        assert w.op("rename", f"/{i}.doc", f"/{i}.doc.locked", outcome="failed") is None
        assert w.op("rename", f"/{i}.pdf", f"/{i}.pdf.x", dt=7.0) is None  # 9 a minute
    assert w.findings == []


def test_users_are_counted_apart() -> None:
    w = World()
    for i in range(15):
        user = "alice" if i % 2 else "bob"
        w.op("rename", f"/{i}.txt", f"/{i}.txt.locked", user=user)
    assert w.findings == []


def test_an_office_day_raises_nothing() -> None:
    """Word and Excel saving through temp files, an archive unzipped (new random-looking
    files), a compile, photos copied, a zip re-saved, a folder cleaned up: hundreds of
    operations, quickly, by one user."""
    w = World()
    for i in range(60):  # Word saves: write temp, original -> backup name, temp -> original
        doc = f"/docs/letter-{i % 5}.docx"
        w.before[doc] = w.now[doc] = docx()
        w.now[f"/docs/~WRD{i:04d}.tmp"] = docx()
        w.op("create", f"/docs/~WRD{i:04d}.tmp")
        w.op("rename", doc, f"/docs/~WRL{i:04d}.tmp")
        w.op("rename", f"/docs/~WRD{i:04d}.tmp", doc)
        w.op("delete", f"/docs/~WRL{i:04d}.tmp")
    for i in range(40):  # LibreOffice: overwrites of its own zipped formats
        path = f"/calc/sheet-{i}.ods"
        w.before[path] = docx()
        w.now[path] = docx()
        w.op("open_write", path)
    for i in range(300):  # unzip: new files with compressed content
        w.now[f"/unzipped/img-{i}.png"] = os.urandom(4096)
        w.op("create", f"/unzipped/img-{i}.png")
    for i in range(200):  # a compile: .o files written, then renamed from temp names
        obj = f"/build/obj/m{i}.o"
        w.before[obj] = text()
        w.now[obj] = text()
        w.op("create", obj + ".tmp")
        w.op("rename", obj + ".tmp", obj)
        w.op("open_write", obj)
    for i in range(200):  # photos copied in, a few replaced by edited versions
        photo = f"/photos/IMG_{i:04d}.JPG"
        w.now[photo] = os.urandom(4096)
        w.op("create", photo)
        if i % 10 == 0:
            w.op("open_write", photo)
    for i in range(30):  # downloads finished
        w.op("create", f"/dl/file-{i}.pdf.part")
        w.op("rename", f"/dl/file-{i}.pdf.part", f"/dl/file-{i}.pdf")
    for i in range(30):  # an editor's safe save: copy written, original deleted, copy renamed
        path = f"/notes/n-{i}.txt"
        w.op("create", path + ".tmp")
        w.op("delete", path)
        w.op("rename", path + ".tmp", path)
    for i in range(100):  # an old folder cleaned up
        w.op("delete", f"/old/report-{i}.xlsx")
    assert w.findings == []
