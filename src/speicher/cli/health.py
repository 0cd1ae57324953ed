"""``speicher pool scrub``, ``speicher pool scrubs`` and ``speicher disk health``."""

from __future__ import annotations
