"""Content digests: of a few named files of a folder, and of a text."""

from __future__ import annotations

import hashlib
from pathlib import Path

RANKER_WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors", "dami_pref.json")


def short_digest(data: bytes | str) -> str:
    """The first 16 hex digits of sha256: a fingerprint of data (a checkpoint, a manifest)."""
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()[:16]


def text_sha256(text: str | None) -> str | None:
    """sha256 of a text (a chat template, as lm-eval's ``chat_template_sha``); None for none."""
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def files_digest(folder: str | Path, names: tuple[str, ...]) -> str:
    """sha256 over the named files of a folder (those that exist), in order."""
    digest = hashlib.sha256()
    for name in names:
        path = Path(folder) / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ranker_fingerprint(folder: str | Path) -> str:
    """A ranker folder's weights and settings, as results.json and the card record them."""
    return files_digest(folder, RANKER_WEIGHT_FILES)
