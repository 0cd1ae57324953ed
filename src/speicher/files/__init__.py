"""ShareFS: the single view of a share's files for every Python protocol (see sharefs.py)."""

from speicher.files.errors import FsError
from speicher.files.events import FileEvent, FileEvents
from speicher.files.sharefs import (
    Entry,
    InternalFile,
    InternalFolder,
    ReadFile,
    ShareFS,
    ShareView,
    Upload,
    WriteFile,
)

__all__ = [
    "Entry",
    "FileEvent",
    "FileEvents",
    "FsError",
    "InternalFile",
    "InternalFolder",
    "ReadFile",
    "ShareFS",
    "ShareView",
    "Upload",
    "WriteFile",
]
