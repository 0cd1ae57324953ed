"""Veeam's Smart Object Storage API (SOSAPI): two read-only objects every bucket has under
``.system-d26a9498-cb7c-4a87-a44a-8ae204f5ba6c/``, made when asked for, never stored:
``system.xml`` (what this server can do and recommends) and ``capacity.xml`` (the bucket's
size, free and used bytes: the share's quota where it has one, else its pool's). Veeam Backup
& Replication reads them to size repositories and to warn before a bucket fills."""

from __future__ import annotations

import hashlib

from speicher.files import ShareView

FOLDER = ".system-d26a9498-cb7c-4a87-a44a-8ae204f5ba6c"
SYSTEM = f"{FOLDER}/system.xml"
CAPACITY = f"{FOLDER}/capacity.xml"
KEYS = frozenset({SYSTEM, CAPACITY})
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def system_xml() -> bytes:
    return (
        HEADER + "<SystemInfo>"
        '<ProtocolVersion>"1.0"</ProtocolVersion>'
        '<ModelName>"Speicher"</ModelName>'
        "<ProtocolCapabilities><CapacityInfo>true</CapacityInfo>"
        "<UploadSessions>false</UploadSessions><IAMSTS>false</IAMSTS></ProtocolCapabilities>"
        # 4 MiB blocks: what Veeam recommends for object storage; a file per block here
        "<SystemRecommendations><KbBlockSize>4096</KbBlockSize></SystemRecommendations>"
        "</SystemInfo>"
    ).encode()


def capacity_xml(view: ShareView) -> bytes:
    free, total = view.space()
    used = max(0, total - free)
    return (
        HEADER + f"<CapacityInfo><Capacity>{total}</Capacity><Available>{free}</Available>"
        f"<Used>{used}</Used></CapacityInfo>"
    ).encode()


def content(view: ShareView, key: str) -> tuple[bytes, str]:
    """The object's bytes and ETag."""
    data = system_xml() if key == SYSTEM else capacity_xml(view)
    return data, hashlib.md5(data, usedforsecurity=False).hexdigest()
