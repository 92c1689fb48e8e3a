"""What an export may carry: model files only, and no pickle anywhere.

A Hub-ready folder is uploaded as it is, so it must hold only what loading the ranker needs:
the model's config and safetensors, the tokenizer, ``dami_pref.json`` and the card. Anything
else found in the ranker folder is named in a warning and left out; a pickle-format file in the
ranker or its local backbone is an error, since a Hub user's tools might unpickle it.
"""

from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path

from ..errors import DamiPrefError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "chat_template.jinja", "chat_template.json",
                   "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "spiece.model")
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors",
               "model.safetensors.index.json", *TOKENIZER_FILES)
RANKER_FILES = ("adapter_config.json", "dami_pref.json", "evaluation.json", *MODEL_FILES)
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.npy", "*.joblib")


def check_files(folder: Path, patterns: tuple[str, ...], what: str,
                regenerated: tuple[str, ...] = ()) -> None:
    """A pickle anywhere under ``folder`` is an error; every file that is not a top-level
    match of ``patterns`` (nor rewritten by the export) is named in one warning."""
    folder = Path(folder)
    refuse_pickles(folder, what)
    left_out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_dir() or path.name in regenerated or \
                any(part.startswith(".") for part in relative.parts):
            continue
        if not (len(relative.parts) == 1 and matches(path, patterns)):
            left_out.append(str(relative))
    if left_out:
        warnings.warn(f"left out of the export (not a file {what} needs): "
                      f"{', '.join(left_out[:10])}{' …' if len(left_out) > 10 else ''}",
                      stacklevel=3)


def refuse_pickles(folder: Path, what: str) -> None:
    pickles = sorted(p for p in Path(folder).rglob("*")
                     if p.is_file() and matches(p, PICKLE_PATTERNS))
    if pickles:
        raise DamiPrefError(f"{pickles[0]}: a pickle-format file in {what}; an export carries "
                            "safetensors only. Remove it (and any other: "
                            f"{len(pickles)} found) and export again")


def matches(path: Path, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path.name, pattern) for pattern in patterns)
