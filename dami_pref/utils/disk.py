"""Telling a full disk or a failing one apart from a bug, whatever library was writing.

Python raises ``OSError`` with an errno; torch's C++ writers raise ``RuntimeError`` (``basic_ios``,
``PytorchStreamWriter``); safetensors raises its own ``SafetensorError`` with the OS error in its
text. Each is turned into one line naming where the output was going.
"""

from __future__ import annotations

import errno

DISK_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EIO: "an I/O error",
               errno.EDQUOT: "the disk quota is exceeded",
               errno.EFBIG: "the file is larger than this system allows",
               errno.EROFS: "the file system is read-only"}
# what C++ and Rust writers say instead of an errno, and what it means
_TEXT_MARKERS = (("No space left on device", DISK_ERRNOS[errno.ENOSPC]),
                 ("os error 28", DISK_ERRNOS[errno.ENOSPC]),
                 ("Input/output error", DISK_ERRNOS[errno.EIO]),
                 ("os error 5", DISK_ERRNOS[errno.EIO]),
                 ("File too large", DISK_ERRNOS[errno.EFBIG]),
                 ("Disk quota exceeded", DISK_ERRNOS[errno.EDQUOT]),
                 ("basic_ios::clear", "no space left on device, or an I/O error"),
                 ("PytorchStreamWriter failed", "no space left on device, or an I/O error"))


def disk_failure(err: BaseException) -> str | None:
    """What went wrong with the disk, in words, or None when ``err`` is something else."""
    for cause in _chain(err):
        if isinstance(cause, OSError) and cause.errno in DISK_ERRNOS:
            return DISK_ERRNOS[cause.errno]
        text = str(cause)
        for marker, meaning in _TEXT_MARKERS:
            if marker in text:
                return meaning
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
