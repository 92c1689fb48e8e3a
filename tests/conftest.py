"""Shared fixtures and hooks: tiny random Qwen3 pairs built in the test session (never
downloaded). The helpers they use, and the tests use, are in ``helpers.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from helpers import build_toy_pairs, make_pair, quick_args, reset_accelerate_state

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", min(2, os.cpu_count() or 1))))


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("tiny_pair"))


@pytest.fixture(scope="session")
def tiny_pair_bf16(tmp_path_factory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("tiny_pair_bf16"), seed=1, dtype=torch.bfloat16)


@pytest.fixture(scope="session")
def toy_pairs(tmp_path_factory) -> Path:
    return build_toy_pairs(tmp_path_factory.mktemp("toy_pairs"))


@pytest.fixture(scope="session")
def session_ranker(toy_pairs, tmp_path_factory) -> Path:
    """The one trained ranker the tests that only read a ranker share (selection, export,
    serving, the docs' snippets, the benchmarks' smoke runs): trained once per session."""
    from dami_pref.ranker.training import train

    out = tmp_path_factory.mktemp("session_ranker") / "ranker"
    reset_accelerate_state()
    train(*quick_args(toy_pairs, out, objective="acc", max_steps=30, eval_steps=100))
    reset_accelerate_state()
    return out


def pytest_collection_modifyitems(config, items) -> None:
    """vLLM tests run in the environment that has vLLM (scripts/test.sh makes it); elsewhere
    they are reported as skipped, with where they run."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return
    skip = pytest.mark.skip(reason="needs vLLM: scripts/test.sh runs these in .venv-vllm")
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logfinish(nodeid, location):
    """With DAMI_PREF_MEMORY_LOG=FILE, each test that raises the session's peak resident memory
    (this process, or the largest command it started) appends a line: where the peak is."""
    import os
    import resource

    log = os.environ.get("DAMI_PREF_MEMORY_LOG")
    if not log:
        return
    peaks = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
             resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    if peaks != getattr(pytest_runtest_logfinish, "last", None):
        pytest_runtest_logfinish.last = peaks
        with open(log, "a") as handle:
            handle.write(f"{peaks[0] / 2**20:6.2f} GiB self {peaks[1] / 2**20:6.2f} GiB "
                         f"children  {nodeid}\n")
