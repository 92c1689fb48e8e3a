"""Writing outputs so that a crash never leaves a half-written file under the final name."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def temporary_sibling(path: str | Path) -> Path:
    """A hidden name beside ``path`` to build into before renaming (files or folders)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def building_folder(out: str | Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``out`` to build into.

    When the block finishes it replaces ``out`` whole; when the block fails it is removed, and
    ``out`` (old or absent) is left as it was. No reader ever sees a half-built folder.
    """
    out = Path(out)
    tmp = temporary_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
