"""What looks like ransomware: the signals, counted per actor over a sliding window.

Pure logic, tested without a share or a clock (tests/unit/test_ransomware_signals.py). The
service feeds it the audit log's file records and gives it two readers: the first few KiB of
a file as it is now and as the newest snapshot has it. It never reads a whole file.

An *actor* is one user from one client address on one share: what one infected laptop does.
The signals, each with its own threshold (:class:`Thresholds`, per share):

canary
    a canary file (:mod:`speicher.ransomware.canary`) renamed, deleted, or opened for writing
    and changed afterwards: at once, one is enough. Opening it in Word and closing it again
    changes nothing and counts for nothing.
renames
    ``renames`` files within ``window`` seconds renamed to the same new extension, the way
    ransomware marks what it has done: ``report.docx`` -> ``report.docx.locked`` (an
    extension appended) or ``report.locked`` (the extension replaced, the name kept). An
    editor's save (``report.docx`` -> ``~WRL0002.tmp``) and a download's last step
    (``photo.jpg.part`` -> ``photo.jpg``) change the name itself and never count.
overwrites
    ``overwrites`` existing files within the window whose first bytes now look random
    (:func:`looks_random`) while they did not before: before is the newest snapshot's copy,
    or, for a file no snapshot has, its extension (a JPEG or a ZIP always looks random).
    A new file has no before and never counts, so copying photos or unzipping does not.
deletes
    ``deletes`` files within the window deleted after the same actor created a file whose
    name is the deleted one with an extension appended (``report.docx.locked`` created,
    ``report.docx`` deleted): ransomware that writes an encrypted copy and removes the
    original.

The defaults (10 of each within 60 s) and how they were chosen are in docs/ransomware.md.
"""

from __future__ import annotations

import collections
import math
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from speicher.audit.records import Record

SAMPLE = 4096  # bytes read of a file's start to judge its content
MIN_SAMPLE = 256  # fewer bytes say nothing about randomness
MARGIN = 0.15  # bits per byte below what random bytes of that length reach
WATCHED = frozenset({"create", "open_write", "rename", "copy", "delete"})
EXAMPLES = 20  # paths an incident names
RECENT = 5000  # an actor's last changes kept, for an incident to know what it touched
# formats whose content is compressed or encrypted already: an overwrite of one that looks
# random afterwards says nothing (PDF: its streams are compressed, its start often not)
COMPRESSED = frozenset(
    [
        "7z",
        "aac",
        "apk",
        "avi",
        "bz2",
        "cab",
        "docm",
        "docx",
        "dotx",
        "epub",
        "flac",
        "gif",
        "gz",
        "heic",
        "jar",
        "jpeg",
        "jpg",
        "kdbx",
        "m4a",
        "m4v",
        "mkv",
        "mov",
        "mp3",
        "mp4",
        "mpeg",
        "mpg",
        "odg",
        "odp",
        "ods",
        "odt",
        "ogg",
        "pdf",
        "png",
        "pptm",
        "pptx",
        "rar",
        "tgz",
        "txz",
        "webm",
        "webp",
        "wma",
        "wmv",
        "xlsb",
        "xlsm",
        "xlsx",
        "xz",
        "zip",
        "zst",
    ]
)


@dataclass(frozen=True)
class Thresholds:
    window: float = 60.0  # seconds
    renames: int = 10
    overwrites: int = 10
    deletes: int = 10
    canary: bool = True


@dataclass(frozen=True)
class Finding:
    """An actor that crossed a threshold: who, where, which signal, and what it touched."""

    user: str
    address: str
    protocol: str
    share: str
    signal: str  # canary, renames, overwrites, deletes
    detail: str
    first: float  # the time of the first record that counted
    paths: tuple[str, ...]  # the files that counted (at most EXAMPLES)
    session: str = ""  # the last record's detail: "smbd <pid>" over SMB
    # the actor's changes within the window: (time, operation, path, target), oldest first
    changes: tuple[tuple[float, str, str, str], ...] = ()


def entropy(data: bytes) -> float:
    """Shannon entropy of ``data`` in bits per byte (0..8)."""
    if not data:
        return 0.0
    n = len(data)
    counts = collections.Counter(data)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def random_level(n: int) -> float:
    """About the entropy that ``n`` random bytes show (less than 8: a short sample does not
    hold every byte value equally often); Miller-Madow's bias."""
    return 8.0 - 255 / (2 * n * math.log(2))


def looks_random(data: bytes) -> bool | None:
    """Whether ``data`` (a file's first bytes) looks encrypted or compressed; None when it
    is too short to say."""
    if len(data) < MIN_SAMPLE:
        return None
    return entropy(data) >= random_level(len(data)) - MARGIN


def extension(name: str) -> str:
    """``report.docx`` -> ``docx``; ``''`` for none (``.bashrc`` has none)."""
    base = posixpath.basename(name)
    stem, dot, ext = base.rpartition(".")
    return ext.lower() if dot and stem and ext else ""


def marked_extension(old: str, new: str) -> str | None:
    """The extension a rename from ``old`` to ``new`` marks the file with: appended
    (``a.docx`` -> ``a.docx.locked``) or replacing the old one with the name kept
    (``a.docx`` -> ``a.locked``), in the same folder; None for any other rename."""
    if posixpath.dirname(old) != posixpath.dirname(new):
        return None
    old_name, new_name = posixpath.basename(old), posixpath.basename(new)
    if new_name.startswith(old_name + ".") and "." not in new_name[len(old_name) + 1 :]:
        return new_name[len(old_name) + 1 :].lower() or None
    old_stem, _, old_ext = old_name.rpartition(".")
    new_stem, _, new_ext = new_name.rpartition(".")
    if old_stem and new_stem == old_stem and new_ext and new_ext.lower() != old_ext.lower():
        return new_ext.lower()
    return None


Sampler = Callable[[str, str], bytes | None]  # (share, path) -> the first bytes, None: gone
CanaryCheck = Callable[[str, str], bool]  # (share, path) -> the canary there was changed


@dataclass
class _Actor:
    renames: collections.deque[tuple[float, str, str]] = field(
        default_factory=collections.deque
    )  # (time, extension, path)
    overwrites: collections.deque[tuple[float, str]] = field(default_factory=collections.deque)
    deletes: collections.deque[tuple[float, str]] = field(default_factory=collections.deque)
    created: dict[str, float] = field(default_factory=dict)  # path -> time, oldest first
    # a created file's name without its last extension -> time: what it may be a copy of
    bases: dict[str, float] = field(default_factory=dict)
    recent: collections.deque[Record] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT)
    )
    renamed: dict[str, str] = field(default_factory=dict)  # old path -> new, this window
    last: float = 0.0


class Detector:
    """Counts the signals of every actor; :meth:`observe` returns a finding when an actor
    crosses a threshold. Not thread-safe: one thread feeds it."""

    def __init__(
        self,
        thresholds: Callable[[str], Thresholds | None],
        is_canary: Callable[[str, str], bool],
        canary_changed: CanaryCheck,
        sample_now: Sampler,
        sample_before: Sampler,
    ) -> None:
        """``thresholds(share)``: the share's, None when detection is off there."""
        self.thresholds = thresholds
        self.is_canary = is_canary
        self.canary_changed = canary_changed
        self.sample_now = sample_now
        self.sample_before = sample_before
        self._actors: dict[tuple[str, str, str], _Actor] = {}

    def observe(self, record: Record) -> Finding | None:
        if record.category != "file" or record.operation not in WATCHED:
            return None
        if record.outcome != "ok" or not record.user:
            return None
        limits = self.thresholds(record.share)
        if limits is None:
            return None
        key = (record.user, record.address, record.share)
        actor = self._actors.get(key)
        if actor is None:
            actor = self._actors[key] = _Actor()
            if len(self._actors) > 10_000:
                self._forget_idle(record.time, limits.window)
        self._expire(actor, record.time, limits.window)
        actor.last = record.time
        actor.recent.append(record)
        if limits.canary and (finding := self._canary(record)) is not None:
            return finding
        op = record.operation
        if op == "rename":
            return self._rename(actor, record, limits)
        if op in ("create", "copy"):
            self._created(actor, record.target if op == "copy" else record.path, record.time)
            return None
        if op == "open_write":
            if record.path in actor.created:
                return None  # its own new file: no before to compare with
            return self._overwrite(actor, record, limits)
        return self._delete(actor, record, limits)

    # -- the signals ------------------------------------------------------------------------------

    def _canary(self, r: Record) -> Finding | None:
        # a copy *to* a canary's name changes it, a copy *of* it does not
        names = (r.target,) if r.operation == "copy" else (r.path, r.target)
        touched = [p for p in names if p and self.is_canary(r.share, p)]
        if not touched:
            return None
        if r.operation == "open_write" and not self.canary_changed(r.share, touched[0]):
            return None
        what = {"rename": "renamed", "delete": "deleted"}.get(r.operation, "changed")
        return self._finding(r, "canary", f"canary file {touched[0]} {what}", r.time, touched)

    def _rename(self, actor: _Actor, r: Record, limits: Thresholds) -> Finding | None:
        actor.renamed[r.path] = r.target
        if any(p == r.target for _, p in actor.deletes):
            # a "safe save": new copy written, the original deleted, the copy renamed to
            # the original's name; ransomware's copy keeps its new name
            actor.deletes = collections.deque((t, p) for t, p in actor.deletes if p != r.target)
        if r.path in actor.created:  # its own new file renamed (a save through a temp file)
            self._created(actor, r.target, actor.created.pop(r.path))
            return None
        ext = marked_extension(r.path, r.target)
        if ext is None:
            return None
        actor.renames.append((r.time, ext, r.path))
        same = [(t, p) for t, e, p in actor.renames if e == ext]
        if len(same) < limits.renames:
            return None
        return self._finding(
            r,
            "renames",
            f"{len(same)} files renamed to .{ext} within {limits.window:g} s",
            same[0][0],
            [p for _, p in same],
        )

    def _overwrite(self, actor: _Actor, r: Record, limits: Thresholds) -> Finding | None:
        if 0 < r.size < 256:  # too short to judge (0: size unknown)
            return None
        now = self.sample_now(r.share, r.path)
        if now is None and r.path in actor.renamed:  # renamed since: read it where it is
            now = self.sample_now(r.share, actor.renamed[r.path])
        if now is None or not looks_random(now):
            return None
        before = self.sample_before(r.share, r.path)
        was_random = looks_random(before) if before is not None else None
        if was_random is None:
            was_random = extension(r.path) in COMPRESSED
        if was_random or any(p == r.path for _, p in actor.overwrites):
            return None
        actor.overwrites.append((r.time, r.path))
        if len(actor.overwrites) < limits.overwrites:
            return None
        return self._finding(
            r,
            "overwrites",
            f"{len(actor.overwrites)} files overwritten with random-looking content "
            f"within {limits.window:g} s",
            actor.overwrites[0][0],
            [p for _, p in actor.overwrites],
        )

    def _delete(self, actor: _Actor, r: Record, limits: Thresholds) -> Finding | None:
        if r.path in actor.created:
            del actor.created[r.path]  # its own new file gone again: a temp file
            return None
        if r.path not in actor.bases or any(p == r.path for _, p in actor.deletes):
            return None
        actor.deletes.append((r.time, r.path))
        if len(actor.deletes) < limits.deletes:
            return None
        return self._finding(
            r,
            "deletes",
            f"{len(actor.deletes)} files deleted after a copy of each with a new extension "
            f"was made, within {limits.window:g} s",
            actor.deletes[0][0],
            [p for _, p in actor.deletes],
        )

    # -- keeping the window -----------------------------------------------------------------------

    def _finding(
        self, r: Record, signal: str, detail: str, first: float, paths: list[str]
    ) -> Finding:
        actor = self._actors.get((r.user, r.address, r.share))
        recent = actor.recent if actor is not None else ()
        return Finding(
            user=r.user,
            address=r.address,
            protocol=r.protocol,
            share=r.share,
            signal=signal,
            detail=detail,
            first=first,
            paths=tuple(paths[:EXAMPLES]),
            session=r.detail,
            changes=tuple((c.time, c.operation, c.path, c.target) for c in recent),
        )

    @staticmethod
    def _created(actor: _Actor, path: str, when: float) -> None:
        actor.created.pop(path, None)  # to the end: the dicts stay oldest first
        actor.created[path] = when
        base, dot, ext = path.rpartition(".")
        if dot and ext and "/" not in ext and not base.endswith("/"):
            actor.bases.pop(base, None)
            actor.bases[base] = when

    @staticmethod
    def _expire(actor: _Actor, now: float, window: float) -> None:
        since = now - window
        for counted in (actor.renames, actor.overwrites, actor.deletes):
            while counted and counted[0][0] < since:
                counted.popleft()
        while actor.recent and actor.recent[0].time < since:
            actor.recent.popleft()
        for made in (actor.created, actor.bases):  # oldest first: drop from the front
            while made:
                oldest = next(iter(made))
                if made[oldest] >= since and len(made) <= 100_000:
                    break
                del made[oldest]
        if len(actor.renamed) > 10_000 or now - actor.last > window:
            actor.renamed.clear()

    def _forget_idle(self, now: float, window: float) -> None:
        self._actors = {k: a for k, a in self._actors.items() if now - a.last <= window}

    def forget(self, user: str) -> None:
        """Drop what was counted for ``user`` (after an incident: it starts from nothing)."""
        self._actors = {k: a for k, a in self._actors.items() if k[0] != user}
