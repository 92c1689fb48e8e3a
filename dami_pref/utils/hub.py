"""Telling a Hugging Face Hub id from a local path, and downloading only safe files."""

from __future__ import annotations

from pathlib import Path

from ..errors import DamiPrefError
from .portable import resolve_portable

# What a model or ranker folder may need from the Hub: never pickles.
SAFE_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.md"]
# A name ending like a data or weight file is a missing local file, not a Hub id.
FILE_SUFFIXES = {".jsonl", ".json", ".parquet", ".txt", ".csv", ".yaml", ".yml", ".safetensors",
                 ".bin", ".pt", ".pth", ".arrow"}


def looks_like_hub_id(reference: str | Path) -> bool:
    """``owner/name`` that is not a path on this machine (``./x``, ``/x``, ``~/x``, ``a/b.jsonl``)."""
    text = str(reference)
    if Path(text).expanduser().exists():
        return False
    owner, _, name = text.partition("/")
    return (text.count("/") == 1 and bool(owner) and bool(name)
            and not text.startswith((".", "/", "~"))
            and Path(text).suffix.lower() not in FILE_SUFFIXES)


def download(repo_id: str, *, revision: str | None = None, what: str = "model",
             repo_type: str = "model", patterns: list[str] | None = None) -> Path:
    """A Hub snapshot of safe files only; any failure is a clear error naming the repository."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, repo_type=repo_type,
                                      allow_patterns=patterns or SAFE_PATTERNS))
    except Exception as err:  # noqa: BLE001 - network, auth and missing-repo errors alike
        raise DamiPrefError(f"{repo_id!r} is not a local {what} folder, and downloading it from "
                            f"the Hugging Face Hub failed: {type(err).__name__}: {err}") from None


def local_or_hub(reference: str | Path, *, revision: str | None = None,
                 what: str = "model") -> Path:
    """A local folder (or a ``dami_pref://`` name) as is; a Hub id downloaded; anything else a
    clear error."""
    reference = resolve_portable(reference)
    path = Path(reference).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DamiPrefError(f"{path} is a file; a {what} is a folder")
        return path
    if not looks_like_hub_id(reference):
        raise DamiPrefError(f"{what} folder not found: {reference}")
    return download(str(reference), revision=revision, what=what)
