"""Writing outputs so that a crash never leaves a half-written file or folder under its final name.

Files and folders are built under a hidden temporary name beside the destination and renamed
into place when whole. Replacing an existing folder renames the old one aside first, then swaps
the new one in, then removes the old one: a kill at any instant leaves one of them whole.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..errors import DamiPrefError
from .faults import crash_point

TEMP_MARK = ".dami-tmp-"
# .NAME.dami-tmp-[TAG-]PID[.SUFFIX]: a name only this toolkit makes, with the writer's PID
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.dami-tmp-(?:(?P<tag>[a-z]+)-)?(?P<pid>\d+)"
                        r"(?P<suffix>\.[A-Za-z0-9]+)?$")


def temporary_sibling(path: str | Path, tag: str = "", keep_suffix: bool = False) -> Path:
    """A hidden name beside ``path`` to build into before renaming (files or folders).

    ``keep_suffix`` ends the name with ``path``'s suffix, for writers that look at it
    (parquet, matplotlib)."""
    path = Path(path)
    suffix = path.suffix if keep_suffix else ""
    return path.with_name(f".{path.name}{TEMP_MARK}{tag + '-' if tag else ''}{os.getpid()}{suffix}")


def temporary_parts(path: str | Path) -> dict | None:
    """name, tag and pid of a temporary this toolkit made; None for any other name."""
    match = _TEMP_NAME.match(Path(path).name)
    if not match:
        return None
    return {"name": match["name"], "tag": match["tag"] or "", "pid": int(match["pid"])}


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a temporary made by :func:`temporary_sibling`."""
    return temporary_parts(path) is not None


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def is_stale_temporary(path: str | Path) -> bool:
    """A toolkit temporary whose writer is no longer running: a killed run's leftover."""
    parts = temporary_parts(path)
    return parts is not None and not pid_alive(parts["pid"])


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete the temporaries killed runs left under ``folder``; returns how many went."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(".*") if is_stale_temporary(p)]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(stale)


def stale_siblings(out: str | Path) -> list[Path]:
    """Temporaries of ``out`` beside it whose writer is gone. A user's own ``.NAME.tmpX`` and a
    live run's temporaries are never among them."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.glob(f".{glob.escape(out.name)}{TEMP_MARK}*")
                  if is_stale_temporary(p) and temporary_parts(p)["name"] == out.name)


def recover_destination(out: str | Path) -> list[str]:
    """Clean up after a run killed while writing ``out``; returns what was done, for the log.

    A kill inside :func:`replace_folder` between its two renames leaves the old folder under
    its ``old`` temporary name and ``out`` absent: the old folder is renamed back. Every other
    temporary is half-written work and is removed.
    """
    out = Path(out)
    notes = []
    for stale in stale_siblings(out):
        if not out.exists() and temporary_parts(stale)["tag"] == "old":
            stale.rename(out)
            notes.append(f"restored {out} from an interrupted swap")
        elif stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
            notes.append(f"removed the stale temporary {stale}")
        else:
            stale.unlink(missing_ok=True)
            notes.append(f"removed the stale temporary {stale}")
    return notes


def check_destination(out: str | Path, overwrite: bool, flag: str = "--overwrite",
                      what: str = "folder") -> Path:
    """Before any work: ``out`` must be a folder we may write, absent or empty unless
    ``overwrite``. Stale temporaries of a killed run are cleaned up (and said so)."""
    out = check_location(out, what)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DamiPrefError(f"{out} exists and is not empty; pass {flag} to replace it")
    return out


def check_results_folder(out: str | Path, marker: str, overwrite: bool) -> Path:
    """A results folder may hold caches to reuse, but its results are replaced only when
    asked (``--overwrite``)."""
    out = check_location(out)
    if (out / marker).exists() and not overwrite:
        raise DamiPrefError(f"{out} already holds {marker}; pass --overwrite to replace it, or "
                            "choose another --output")
    return out


def check_location(out: str | Path, what: str = "folder") -> Path:
    """``out`` is, or can become, a folder we may write; a killed run's temporaries go."""
    out = Path(out)
    for note in recover_destination(out):
        print(note, file=sys.stderr)
    if out.exists() and not out.is_dir():
        raise DamiPrefError(f"{out} is a file, not a {what}; choose another output location")
    parent = out if out.is_dir() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DamiPrefError(f"{out}: {parent} is a file, so the {what} cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DamiPrefError(f"{out}: {parent} is not writable")
    return out


_DEFERRED: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("deferred_renames",
                                                                    default=None)


def check_output_file(path: str | Path, flag: str = "--output") -> Path:
    """Before any work: ``path`` can be written as a file (not a folder, in a writable place)."""
    path = Path(path)
    if path.is_dir():
        raise DamiPrefError(f"{flag} {path} is a folder; name a file")
    check_location(path.parent, "folder")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file path beside ``path``; renamed onto ``path`` when the block succeeds
    (or, inside :func:`outputs_together`, when that block does).

    The temporary name keeps the destination's suffix, so writers that look at it (parquet,
    matplotlib) pick the right format.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, keep_suffix=True)
    deferred = _DEFERRED.get()
    try:
        yield tmp
        crash_point("file-written")
        if deferred is not None:
            deferred.append((tmp, path))
        else:
            tmp.replace(path)
    finally:
        if tmp.exists() and (deferred is None or (tmp, path) not in deferred):
            tmp.unlink()


@contextmanager
def outputs_together() -> Iterator[None]:
    """Files written inside the block reach their final names together, after the last one
    is whole: a full disk or a failure half-way leaves every earlier output as it was.
    (Renames need no space, so once every file is written, the swap cannot fail for want of it.)
    """
    deferred: list[tuple[Path, Path]] = []
    token = _DEFERRED.set(deferred)
    try:
        yield
    except BaseException:
        for tmp, _ in deferred:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _DEFERRED.reset(token)
    for tmp, path in deferred:
        tmp.replace(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON lines, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def write_parquet(table, path: str | Path) -> Path:
    """Write a pyarrow table as parquet, atomically."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def clear_folder(folder: Path) -> None:
    """Remove a folder to start it afresh; through a symlink, the linked folder's contents go
    and the link stays (the user pointed the output there)."""
    folder = Path(folder)
    if folder.is_symlink():
        for child in folder.resolve().iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    else:
        shutil.rmtree(folder)


def exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux's ``renameat2`` with ``RENAME_EXCHANGE``), so a reader
    of either never finds it missing; False where the platform or file system cannot."""
    import ctypes
    import errno

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)  # glibc ≥ 2.28
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace_folder(new: Path, out: Path) -> None:
    """Swap the finished folder ``new`` in as ``out``. Where the file system can exchange two
    names in one step, ``out`` is never missing: it names the old folder, then the new one.
    Elsewhere the old ``out`` is renamed aside before ``new`` takes its name (a reader in that
    instant finds ``out`` missing; a kill there is undone by the next run of any command on
    ``out``), and removed only afterwards."""
    share_weights(new)
    if out.exists() and not out.is_symlink() and exchange(new, out):
        crash_point("between-renames")  # ``out`` is the new folder; the old one is aside
        shutil.rmtree(new, ignore_errors=True)
    elif out.exists():
        old = temporary_sibling(out, "old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        crash_point("between-renames")
        new.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(out)


@contextmanager
def building_folder(out: str | Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``out`` to build into.

    When the block finishes it replaces ``out`` whole; when the block fails it is removed, and
    ``out`` (old or absent) is left as it was. No reader ever sees a half-built folder.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    crash_point("folder-built")
    replace_folder(tmp, out)


def share_weights(folder: Path) -> None:
    """Give weight files the mode every other output gets (``0o666`` under the umask): the
    safetensors writer leaves its files private (0600), so a merge or a ranker shared with
    another account, or read by a server running as another user, would be unreadable."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.rglob("*.safetensors"):
        if path.is_file() and not path.is_symlink() and not path.stat().st_mode & 0o077:
            path.chmod(0o666 & ~mask)
