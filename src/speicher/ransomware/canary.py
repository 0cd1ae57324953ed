"""Canary files: documents in every share's top folder that no person and no Speicher feature
has a reason to change, so that a change of one is ransomware at work.

Two of them, named to be met early by malware that walks a share in name order either way
(``!`` sorts before letters and digits, ``zzz`` after them), and first in btrfs's own order
(the order of creation) when they are placed right after the share is made. They are plain,
visible files with the share's permissions (a canary that malware cannot write tells nothing);
their text says what they are. Speicher places what is missing at start and after an incident
is resolved, and never writes, reads or restores them otherwise; root never follows a symbolic
link at their names.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import zipfile

from speicher.system import beneath

TEXT = (
    "Speicher placed this file to detect ransomware. Please do not change, move or delete "
    "it: the server takes any change of it as an attack and locks the user out.\n"
    "Speicher hat diese Datei abgelegt, um Erpressungstrojaner zu erkennen. Bitte nicht "
    "ändern, verschieben oder löschen: der Server hält jede Änderung für einen Angriff und "
    "sperrt den Benutzer.\n"
)
DOCX = "!0-Speicher-Canary - do not change.docx"
TXT = "zzz-Speicher-Canary - do not change.txt"
LIMIT = 64 * 1024  # bytes read to compare; a canary is smaller


def _docx() -> bytes:
    """A real (minimal) Word document holding TEXT, the same bytes every time."""
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            "<w:body>"
            + "".join(f"<w:p><w:r><w:t>{line}</w:t></w:r></w:p>" for line in TEXT.splitlines())
            + "</w:body></w:document>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text.encode())
    return out.getvalue()


CONTENT: dict[str, bytes] = {DOCX: _docx(), TXT: TEXT.encode()}
PATHS = frozenset("/" + name for name in CONTENT)


def is_canary(path: str) -> bool:
    """Whether ``path`` (``/name`` inside a share) is one of the canaries."""
    return path in PATHS


def changed(top: int, path: str) -> bool:
    """Whether the canary at ``path`` in the share open as ``top`` is no longer what Speicher
    placed (missing, replaced by something else, or other bytes)."""
    name = path.lstrip("/")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=top)
    except OSError:
        return True
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return True
        return os.read(fd, LIMIT) != CONTENT[name]
    finally:
        os.close(fd)


def place(top: int, replace: bool = False) -> list[str]:
    """Put the missing canaries into the share open as ``top`` (with ``replace``, also those
    that were changed); return the names written. Something else at a canary's name (a
    folder, a link) is left alone."""
    written = []
    for name, content in CONTENT.items():
        st = beneath.lstat(top, name)
        if st is not None and not (replace and stat.S_ISREG(st.st_mode)):
            continue
        if st is not None and not changed(top, "/" + name):
            continue
        _write(top, name, content)
        written.append(name)
    return written


def remove(top: int) -> None:
    """Take the canaries out of the share (detection switched off there)."""
    for name in CONTENT:
        st = beneath.lstat(top, name)
        if st is not None and stat.S_ISREG(st.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=top)


def _write(top: int, name: str, content: bytes) -> None:
    """Write beside and rename over: a reader never sees half a canary. Mode 0666 lets the
    share's default ACL decide who may write it, as for any file a user makes there."""
    tmp = f".{name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=top)
    fd = os.open(tmp, flags, 0o666, dir_fd=top)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, name, src_dir_fd=top, dst_dir_fd=top)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=top)
        if exc.errno != errno.EISDIR:
            raise
