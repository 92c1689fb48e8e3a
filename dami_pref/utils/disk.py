"""Telling a full disk or a failing one apart from a bug, whatever library was writing.

Python raises ``OSError`` with an errno; torch's C++ writers raise ``RuntimeError`` (``basic_ios``,
``PytorchStreamWriter``); safetensors raises its own ``SafetensorError`` with the OS error in its
text. Each is turned into one line naming where the output was going.
"""

from __future__ import annotations

import errno
import re

DISK_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EIO: "an I/O error",
               errno.EDQUOT: "the disk quota is exceeded",
               errno.EFBIG: "the file is larger than this system allows",
               errno.EROFS: "the file system is read-only"}
_TEXT_MARKERS = ("No space left on device", "os error 28", "Input/output error", "os error 5",
                 "basic_ios::clear", "PytorchStreamWriter failed", "File too large",
                 "Disk quota exceeded")


def disk_failure(err: BaseException) -> str | None:
    """What went wrong with the disk, in words, or None when ``err`` is something else."""
    for cause in _chain(err):
        if isinstance(cause, OSError) and cause.errno in DISK_ERRNOS:
            return DISK_ERRNOS[cause.errno]
        text = str(cause)
        if any(marker in text for marker in _TEXT_MARKERS):
            code = re.search(r"os error (\d+)", text)
            if code and int(code[1]) in DISK_ERRNOS:
                return DISK_ERRNOS[int(code[1])]
            return "no space left on device, or an I/O error" if "basic_ios" in text or \
                "PytorchStreamWriter" in text else next(
                    (w for m, w in (("No space", DISK_ERRNOS[errno.ENOSPC]),
                                    ("Input/output", DISK_ERRNOS[errno.EIO]),
                                    ("too large", DISK_ERRNOS[errno.EFBIG]),
                                    ("quota", DISK_ERRNOS[errno.EDQUOT])) if m in text),
                    "a write failed")
    return None


def failed_path(err: BaseException) -> str | None:
    """The file being written, under its final name (not the temporary it was built in)."""
    for cause in _chain(err):
        if isinstance(cause, OSError) and (cause.filename2 or cause.filename):
            return final_name(str(cause.filename2 or cause.filename))  # a copy's destination
    return None


def final_name(path: str) -> str:
    from pathlib import Path

    from .io import temporary_parts

    parts = [(temporary_parts(part) or {"name": part})["name"] for part in Path(path).parts]
    return str(Path(*parts))


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__
