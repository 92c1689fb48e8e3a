"""Killed commands lose nothing: a run killed while writing leaves no half-written destination,
and the same command run again finishes with the result an uninterrupted run gives.

Each test starts the command as a real process, kills it (SIGKILL) while its output is being
written (a temporary sibling of the destination exists, or a first unit or checkpoint is done),
checks what is on disk, then reruns the command and compares with a reference run. The rollout
kill test is in ``test_rollouts.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import load_safetensors_dir, quick_args, reset_accelerate_state
from dami_pref.utils.io import is_temporary

pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dami_pref.cli", *args]


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if is_temporary(p) and p.name[1:].startswith(out.name)]


def kill_when(argv: list[str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Run ``argv`` and SIGKILL it as soon as ``ready()`` holds."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"ended before the kill: {err.decode()[-2000:]}"


def finish(argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_killed_merge_leaves_nothing_and_reruns_to_the_same_weights(tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "merged"
    finish(command("merge", "--lambda", "0.3", "--out", str(reference)))
    kill_when(command("merge", "--lambda", "0.3", "--out", str(out)),
              lambda: bool(temporaries(out)))
    assert not out.exists()  # the half-written folder never took the destination's name
    finish(command("merge", "--lambda", "0.3", "--out", str(out)))
    assert not temporaries(out)  # the killed run's temporary is gone
    got, want = load_safetensors_dir(out), load_safetensors_dir(reference)
    assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in got)


def test_killed_pairs_leave_nothing_and_rerun_to_the_same_pairs(toy_pairs, tmp_path):
    import datasets

    rollouts = toy_pairs.parent / "rollouts"
    reference, out = tmp_path / "reference", tmp_path / "pairs"
    finish(command("pairs", "--rollouts", str(rollouts), "--output", str(reference)))
    kill_when(command("pairs", "--rollouts", str(rollouts), "--output", str(out)),
              lambda: bool(temporaries(out)))
    assert not out.exists()
    finish(command("pairs", "--rollouts", str(rollouts), "--output", str(out)))
    assert not temporaries(out)
    for split in ("train", "validation"):
        got = datasets.load_from_disk(str(out / "dataset"))[split].to_list()
        assert got == datasets.load_from_disk(str(reference / "dataset"))[split].to_list()


@pytest.fixture(scope="module")
def ranker(toy_pairs, tmp_path_factory) -> Path:
    from dami_pref.ranker.training import train

    out = tmp_path_factory.mktemp("kill_ranker") / "ranker"
    reset_accelerate_state()
    train(*quick_args(toy_pairs, out, max_steps=4, eval_steps=100))
    return out


def test_killed_export_leaves_nothing_and_reruns(ranker, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "export"
    finish(command("export", "--ranker", str(ranker), "--out", str(reference)))
    kill_when(command("export", "--ranker", str(ranker), "--out", str(out)),
              lambda: bool(temporaries(out)))
    assert not out.exists()
    finish(command("export", "--ranker", str(ranker), "--out", str(out)))
    assert not temporaries(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert (out / "dami_pref.json").read_text() == (reference / "dami_pref.json").read_text()


def test_killed_evaluation_resumes_its_rollouts_to_the_same_results(tmp_path):
    args = ["--methods", "instruct,thinking,static", "--modes", "offline", "--limit", "24",
            "--validation_limit", "12", "--grid", "0,0.5,1", "--max_new_tokens", "64"]
    reference, out = tmp_path / "reference", tmp_path / "eval"
    finish(command("eval", *args, "--output", str(reference)))
    kill_when(command("eval", *args, "--output", str(out)),
              lambda: any(not is_temporary(p) for p in out.rglob("units/**/*.parquet")))
    assert not (out / "results.json").exists()
    finish(command("eval", *args, "--output", str(out)))
    assert not [p for p in out.rglob(".*") if is_temporary(p)]

    def rows(folder: Path) -> list[tuple]:
        report = json.loads((folder / "results.json").read_text())
        return [(m["method"], m["accuracy"], m["mean_tokens"]) for m in report["methods"]]

    assert rows(out) == rows(reference)


def test_killed_training_resumes_from_its_checkpoint(toy_pairs, tmp_path):
    """Killed after its first checkpoint, the same command with --resume_from_checkpoint true
    ends where an uninterrupted run ends."""
    settings = ["--pairs", str(toy_pairs), "--max_steps", "12", "--save_steps", "4",
                "--eval_steps", "100", "--per_device_train_batch_size", "8", "--use_cpu", "true",
                "--report_to", "none", "--resume_from_checkpoint", "true"]
    reference, out = tmp_path / "reference", tmp_path / "ranker"
    finish(command("train", *settings, "--output_dir", str(reference)))
    checkpoints = out.parent / f"{out.name}-checkpoints"
    kill_when(command("train", *settings, "--output_dir", str(out)),
              lambda: any((c / "trainer_state.json").exists()
                          for c in checkpoints.glob("checkpoint-*")) if checkpoints.exists()
              else False)
    assert not (out / "dami_pref.json").exists()
    finish(command("train", *settings, "--output_dir", str(out)))
    from safetensors.torch import load_file

    for name in ("adapter_model.safetensors",):
        got, want = load_file(out / name), load_file(reference / name)
        assert got.keys() == want.keys()
        assert all(((got[k] - want[k]).abs() <= 1e-5).all() for k in got), name
