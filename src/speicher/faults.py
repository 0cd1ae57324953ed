"""Crash points: named places between the steps of multi-step operations where a test can make
the daemon die at once, as a power cut or ``kill -9`` would.

``crash_point("share.create.subvolume")`` does nothing unless the daemon was started with
``SPEICHER_CRASH_POINT`` naming that point; then the process is killed with SIGKILL on the
spot (no cleanup, no ``finally``). Tests use it to check that every step boundary of every
multi-step operation is finished or undone at the next start, so that database and machine
agree. The variable is read from the daemon's own environment, which only root controls.
"""

from __future__ import annotations

import os
import signal

ENV = "SPEICHER_CRASH_POINT"


def crash_point(name: str) -> None:
    """Die here (SIGKILL) if this is the point the environment names."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
