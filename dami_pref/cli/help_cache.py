"""``--help`` and unknown options answered at once for commands whose arguments need the heavy
libraries to exist: ``train``'s are ``TrainingArguments``, whose import alone costs seconds.

The first full parse of such a command stores its help text and option names in the user's
cache folder (``DAMI_PREF_CACHE``, else ``$XDG_CACHE_HOME/dami-pref``, else
``~/.cache/dami-pref``), under a key made of the versions of the libraries that define the
options and of the files that declare them, so an upgrade or an edit is never answered stale.
Only ``--help`` and an option that no known option starts with are answered from it; every
other command line goes through the real parser.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

COMMANDS_WITH_HEAVY_ARGUMENTS = ("train",)
LIBRARIES = ("dami-pref", "transformers", "trl", "peft", "accelerate")
DECLARED_IN = ("cli/train.py", "cli/parsing.py", "ranker/config.py")


def cache_file(command: str) -> Path:
    root = os.environ.get("DAMI_PREF_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dami-pref"
    digest = hashlib.sha256()
    for name in LIBRARIES:
        try:
            digest.update(f"{name}={metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=none;".encode())
    package = Path(__file__).resolve().parents[1]
    for relative in DECLARED_IN:
        digest.update((package / relative).read_bytes())
    return Path(root) / f"help-{command}-{digest.hexdigest()[:16]}.json"


def answer(command: str, argv: Sequence[str], prog: str) -> int | None:
    """The exit status when the cache answers this command line, else None (parse it)."""
    if command not in COMMANDS_WITH_HEAVY_ARGUMENTS:
        return None
    try:
        entry = json.loads(cache_file(command).read_text())
    except (OSError, ValueError):
        return None
    if any(a in ("-h", "--help") for a in argv):
        sys.stdout.write(entry["help"])
        return 0
    known = entry["options"] + ["--config"]
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and not any(option.startswith(flag) for option in known):
            print(f"{prog}: error: unknown argument(s): {flag}; see {prog} --help",
                  file=sys.stderr)
            return 2
    return None


def remember(command: str, parser) -> None:
    """Store the parser's help and options; a cache that cannot be written is skipped."""
    if command not in COMMANDS_WITH_HEAVY_ARGUMENTS:
        return
    path = cache_file(command)
    if path.is_file():
        return
    from ..utils.io import atomic_write_json

    entry = {"help": parser.format_help(), "options": sorted(parser._option_string_actions)}
    try:
        atomic_write_json(path, entry)
    except OSError:
        pass
