"""Writing outputs so that a crash never leaves a half-written file or folder under its final name.

Files and folders are built under a hidden temporary name beside the destination and renamed
into place when whole. Replacing an existing folder renames the old one aside first, then swaps
the new one in, then removes the old one: a kill at any instant leaves one of them whole.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import DamiPrefError

TEMP_MARK = ".tmp"


def temporary_sibling(path: str | Path, tag: str = "") -> Path:
    """A hidden name beside ``path`` to build into before renaming (files or folders)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{tag}{os.getpid()}")


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a half-written temporary left by :func:`temporary_sibling`."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARK in name


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete the temporaries a killed run left under ``folder``; returns how many went."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(".*") if is_temporary(p)]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(stale)


def stale_siblings(out: str | Path) -> list[Path]:
    """Temporaries beside ``out`` that a killed run of any process left (``.NAME.tmp*``)."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    return sorted(out.parent.glob(f".{out.name}{TEMP_MARK}*"))


def recover_destination(out: str | Path) -> list[str]:
    """Clean up after a run killed while writing ``out``; returns what was done, for the log.

    A kill inside :func:`replace_folder` between its two renames leaves the old folder under
    its ``old`` temporary name and ``out`` absent: the old folder is renamed back. Every other
    temporary is half-written work and is removed.
    """
    out = Path(out)
    notes = []
    for stale in stale_siblings(out):
        if not out.exists() and stale.name.startswith(f".{out.name}{TEMP_MARK}old"):
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


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file path beside ``path``; renamed onto ``path`` when the block succeeds.

    The temporary name keeps the destination's suffix, so writers that look at it (parquet,
    matplotlib) pick the right format.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path).with_suffix(path.suffix)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


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


def replace_folder(new: Path, out: Path) -> None:
    """Swap the finished folder ``new`` in as ``out``: the old ``out`` is renamed aside before
    ``new`` takes its name, and removed only afterwards."""
    if out.exists():
        old = temporary_sibling(out, "old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
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
    replace_folder(tmp, out)
