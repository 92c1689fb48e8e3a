"""Deterministic crash points, for the tests that kill a command mid-write.

``DAMI_PREF_CRASH_AT=point[:n]`` makes the process SIGKILL itself (as the OOM killer or a
pulled plug would: no handler runs) the n-th time (default: the first) a writer passes
``point``. The writers name their points where a kill is most damaging: a folder built but not
yet renamed into place (``folder-built``), between the two renames of a swap
(``between-renames``), a file written but not renamed (``file-written``), a rollout unit
finished (``unit-written``), a training checkpoint promoted (``checkpoint-saved``). Unset, a
point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "DAMI_PREF_CRASH_AT"
_passed: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
