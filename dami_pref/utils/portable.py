"""``dami_pref://…`` names: a path inside the installed package, recorded so that it means the
same file on every machine (the bundled toy pair, its base, its problem sets).

The one owner of that naming: rankers, merges, rollout manifests and evaluation reports
record with :func:`portable`, and every loader reads back with :func:`resolve_portable`.
"""

from __future__ import annotations

from pathlib import Path

from ..version import PACKAGE_DIR

PACKAGE_PREFIX = "dami_pref://"


def portable(name_or_path: str | Path) -> str:
    """A path inside the package as ``dami_pref://…``, another existing path as its absolute
    path, anything else (a Hub id) as given."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        return str(name_or_path)
    try:
        return PACKAGE_PREFIX + path.resolve().relative_to(PACKAGE_DIR).as_posix()
    except ValueError:
        return str(path.resolve())


def resolve_portable(reference: str | Path) -> str:
    """Where a recorded name is on this machine: ``dami_pref://…`` inside the installed
    package, anything else unchanged."""
    text = str(reference)
    if text.startswith(PACKAGE_PREFIX):
        return str(PACKAGE_DIR / text[len(PACKAGE_PREFIX):])
    return text
