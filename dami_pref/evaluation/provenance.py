"""What a results file must say to be compared with another: code, environment, models, data,
rankers, grading, command and times (as lm-evaluation-harness's results files do)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..utils.digest import ranker_fingerprint
from ..utils.portable import portable

PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "safetensors",
            "math-verify", "scikit-learn", "deepspeed")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment() -> dict:
    """Package versions, the git commit, Python, OS, CPU/GPU and torch threads."""
    import torch

    from ..version import PACKAGE_DIR, __version__

    return {"packages": {"dami-pref": __version__, **package_versions()},
            **git_state(PACKAGE_DIR.parent),
            "python": platform.python_version(), "os": platform.platform(),
            "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "torch_threads": torch.get_num_threads(), "created": now()}


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_state(root: Path) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"git_commit": commit, "git_dirty": dirty}


def describe_model(given: str | None, resolved: Path, fingerprint: str) -> dict:
    """A checkpoint as the user named it, where it was read from, its Hub revision (the
    snapshot's commit when it came from the Hub) and a fingerprint of its weights."""
    parts = Path(resolved).resolve().parts
    revision = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None
    return {"name": portable(given or resolved), "path": portable(resolved),
            "revision": revision, "weights_fingerprint": fingerprint}


def describe_ranker(path: str) -> dict:
    from ..ranker.checkpoint import read_ranker_config

    config = read_ranker_config(path)
    training = config.get("training", {})
    return {"path": path, "fingerprint": ranker_fingerprint(path),
            "backbone": config.get("backbone"), "objective": config.get("objective"),
            "grid": config.get("grid"), "seed": training.get("seed"),
            "rollout_fingerprint": training.get("rollout_fingerprint")}


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
