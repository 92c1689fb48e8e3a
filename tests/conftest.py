"""Shared fixtures: tiny random Qwen3 pairs built in the test session (never downloaded)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", min(2, os.cpu_count() or 1))))


def reset_accelerate_state() -> None:
    """Forget Accelerate's process-wide state between in-process runs, with accelerate's own
    test helper (``AccelerateTestCase.tearDown`` resets ``AcceleratorState`` and ``GradientState``)."""
    from accelerate.test_utils.testing import AccelerateTestCase

    AccelerateTestCase().tearDown()


def run_in_process(*argv: str, stdin: str | None = None):
    """``dami-pref ARGV`` in this process (no interpreter start; the console script itself is
    started by test_cli's help tests): a CompletedProcess with status, stdout and stderr."""
    import contextlib
    import io
    import subprocess
    import sys

    from dami_pref.cli import main

    out, err, given = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    reset_accelerate_state()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        sys.stdin = given
        reset_accelerate_state()
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def quick_args(pairs: Path, out: Path, **changes):
    """Arguments of a quick ranker training on CPU (the three objects ``train`` takes)."""
    from dami_pref.ranker.config import ranker_arguments
    from dami_pref.toy import TOY_BASE

    values = dict(pairs=str(pairs), output_dir=str(out), model_name_or_path=str(TOY_BASE),
                  per_device_train_batch_size=8,
                  max_steps=6, eval_steps=3, save_steps=100, learning_rate=5e-3, use_cpu=True,
                  disable_tqdm=True, report_to="none", max_length=64, logging_steps=1)
    return ranker_arguments(**{**values, **changes})


def tiny_config(vocab_size: int, **overrides):
    from transformers import Qwen3Config

    values = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                  max_position_embeddings=128, tie_word_embeddings=True,
                  rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
                  pad_token_id=0, eos_token_id=4)
    values.update(overrides)
    return Qwen3Config(**values)


def save_model(model, tokenizer, folder: Path, dtype: torch.dtype | None = None) -> Path:
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_pair(root: Path, *, seed: int = 0, noise: float = 0.002, dtype: torch.dtype | None = None,
              config_overrides: dict | None = None, thinking_overrides: dict | None = None):
    """A random base and two slightly perturbed copies: a pair that shares a base."""
    from transformers import Qwen3ForCausalLM

    from dami_pref.toy.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    base = Qwen3ForCausalLM(tiny_config(len(tokenizer), **(config_overrides or {})))
    folders = []
    for name, overrides in (("instruct", {}), ("thinking", thinking_overrides)):
        if overrides:
            model = Qwen3ForCausalLM(tiny_config(len(tokenizer),
                                                 **{**(config_overrides or {}), **overrides}))
        else:
            model = Qwen3ForCausalLM(base.config)
            model.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in model.parameters():
                p.add_(noise * torch.randn_like(p))
        folders.append(save_model(model, tokenizer, root / name, dtype))
    return tuple(folders)


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("tiny_pair"))


@pytest.fixture(scope="session")
def tiny_pair_bf16(tmp_path_factory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("tiny_pair_bf16"), seed=1, dtype=torch.bfloat16)


def load_safetensors_dir(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    index = folder / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values()))
             if index.exists() else ["model.safetensors"])
    for name in files:
        out.update(load_file(str(folder / name)))
    return out


ROLLOUT_BUDGET = 80  # the generation budget of the tests' rollouts


def build_toy_pairs(root: Path, n_problems: int = 64, grid=(0.0, 0.25, 0.5, 0.75, 1.0),
                    validation_fraction: float = 0.25) -> Path:
    """Real rollouts of the toy pair on a few training problems, turned into a pairs folder."""
    from dami_pref.data.pair_dataset import PromptRendering, build_pair_dataset
    from dami_pref.data.preferences import PairOptions
    from dami_pref.data.problems import load_problems
    from dami_pref.data.rollouts import ensure_rollouts, pair_identity
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.toy import TOY_BASE, toy_problems_path

    problems = load_problems(toy_problems_path("train"), limit=n_problems)
    runtime = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")
    pair = pair_identity(TOY_INSTRUCT, TOY_THINKING, "auto", "{question}", "instruct")
    ensure_rollouts(runtime, problems, grid, DecodingOptions(max_new_tokens=ROLLOUT_BUDGET),
                    root / "rollouts", pair=pair, shard_size=32, progress=False,
                    source={"instruct": "dami_pref://toy/instruct",
                            "thinking": "dami_pref://toy/thinking"})
    build_pair_dataset(root / "rollouts", root / "pairs", PairOptions(),
                       rendering=PromptRendering(str(TOY_BASE)),
                       validation_fraction=validation_fraction, seed=0)
    return root / "pairs"


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
