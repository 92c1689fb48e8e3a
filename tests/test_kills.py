"""Killed commands lose nothing: a run killed while writing leaves no half-written destination,
and the same command run again finishes with the result an uninterrupted run gives.

Each test starts the command as a real process that SIGKILLs itself at a named crash point
(``DAMI_PREF_CRASH_AT``, checked inside the writers: no polling, no race), checks what is on
disk, then reruns the command and compares with a reference run. The rollout kill test is in
``test_rollouts.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import load_safetensors_dir
from dami_pref.utils.io import is_temporary

pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dami_pref.cli", *args]


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if is_temporary(p) and p.name[1:].startswith(out.name)]


def killed_at(argv: list[str], point: str, timeout: float = 600) -> None:
    """Run ``argv``; it kills itself (SIGKILL) at the crash point ``point`` (``name[:n]``)."""
    proc = subprocess.run(argv, capture_output=True, timeout=timeout,
                          env={**env(), "DAMI_PREF_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL, \
        f"never reached {point}: {proc.stderr.decode()[-2000:]}"


def finish(argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_killed_merge_leaves_nothing_and_reruns_to_the_same_weights(tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "merged"
    finish(command("merge", "--lambda", "0.3", "--out", str(reference)))
    killed_at(command("merge", "--lambda", "0.3", "--out", str(out)), "folder-built")
    assert temporaries(out) and not out.exists()  # the half-written folder never took the destination's name
    finish(command("merge", "--lambda", "0.3", "--out", str(out)))
    assert not temporaries(out)  # the killed run's temporary is gone
    got, want = load_safetensors_dir(out), load_safetensors_dir(reference)
    assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in got)


def test_killed_pairs_leave_nothing_and_rerun_to_the_same_pairs(toy_pairs, tmp_path):
    import datasets

    rollouts = toy_pairs.parent / "rollouts"
    reference, out = tmp_path / "reference", tmp_path / "pairs"
    finish(command("pairs", "--rollouts", str(rollouts), "--output", str(reference)))
    killed_at(command("pairs", "--rollouts", str(rollouts), "--output", str(out)), "folder-built")
    assert temporaries(out) and not out.exists()
    finish(command("pairs", "--rollouts", str(rollouts), "--output", str(out)))
    assert not temporaries(out)
    for split in ("train", "validation"):
        got = datasets.load_from_disk(str(out / "dataset"))[split].to_list()
        assert got == datasets.load_from_disk(str(reference / "dataset"))[split].to_list()


@pytest.fixture(scope="module")
def ranker(session_ranker) -> Path:
    return session_ranker


def test_killed_export_leaves_nothing_and_reruns(ranker, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "export"
    finish(command("export", "--ranker", str(ranker), "--out", str(reference)))
    killed_at(command("export", "--ranker", str(ranker), "--out", str(out)), "folder-built")
    assert temporaries(out) and not out.exists()
    finish(command("export", "--ranker", str(ranker), "--out", str(out)))
    assert not temporaries(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert (out / "dami_pref.json").read_text() == (reference / "dami_pref.json").read_text()


def test_killed_evaluation_resumes_its_rollouts_to_the_same_results(tmp_path):
    args = ["--methods", "instruct,thinking,static", "--modes", "offline", "--limit", "24",
            "--validation_limit", "12", "--grid", "0,0.5,1", "--max_new_tokens", "64"]
    reference, out = tmp_path / "reference", tmp_path / "eval"
    finish(command("eval", *args, "--output", str(reference)))
    killed_at(command("eval", *args, "--output", str(out)), "unit-written")
    assert len(list(out.rglob("units/**/*.parquet"))) == 1
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
    killed_at(command("train", *settings, "--output_dir", str(out)), "checkpoint-saved")
    assert [c.name for c in checkpoints.iterdir()] == ["checkpoint-4"]
    assert not (out / "dami_pref.json").exists()
    finish(command("train", *settings, "--output_dir", str(out)))
    from safetensors.torch import load_file

    for name in ("adapter_model.safetensors",):
        got, want = load_file(out / name), load_file(reference / name)
        assert got.keys() == want.keys()
        assert all(((got[k] - want[k]).abs() <= 1e-5).all() for k in got), name


def test_a_swap_killed_midway_never_leaves_the_destination_missing(tmp_path):
    """``merge --overwrite`` killed in the middle of its swap: the destination names a whole
    folder (here, where the file system exchanges names in one step, the new one) and the next
    run of any command on it removes the old one left aside."""
    out = tmp_path / "merged"
    finish(command("merge", "--lambda", "0.3", "--out", str(out)))
    killed_at(command("merge", "--lambda", "0.7", "--out", str(out), "--overwrite"),
              "between-renames")
    assert json.loads((out / "dami_pref_merge.json").read_text())["lambda"] == 0.7
    assert len(temporaries(out)) == 1  # the old folder, under a temporary name
    refused = subprocess.run(command("merge", "--lambda", "0.7", "--out", str(out)),
                             capture_output=True, text=True, timeout=600, env=env())
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert not temporaries(out) and load_safetensors_dir(out)


def test_without_an_exchange_a_swap_killed_between_renames_is_undone(tmp_path, monkeypatch):
    """Where names cannot be exchanged (another platform or file system), the old folder is
    renamed aside first; a kill before the new one takes the name is undone by the next run."""
    from dami_pref.utils import io

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    aside = out.with_name(f".out.dami-tmp-old-{dead}")
    out.rename(aside)  # the state a kill between the two renames leaves
    assert io.recover_destination(out) and (out / "old.txt").read_text() == "old"
    monkeypatch.setattr(io, "exchange", lambda first, second: False)
    new = io.temporary_sibling(out)
    new.mkdir()
    (new / "new.txt").write_text("new")
    io.replace_folder(new, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"] and not temporaries(out)


def test_a_killed_sweep_resumes_to_the_same_sweep_json(tmp_path):
    """``sweep`` runs on the rollout machinery: killed after its second λ's unit, the same
    command finishes from the units on disk and writes the sweep.json an uninterrupted run
    writes."""
    def sweep(out: Path) -> list[str]:
        return command("sweep", "--grid", "0,0.5,1", "--limit", "12", "--max_new_tokens", "40",
                       "--device", "cpu", "--progress", "false", "--output", str(out))

    reference, out = tmp_path / "reference", tmp_path / "killed"
    finish(sweep(reference))
    killed_at(sweep(out), "unit-written:2")
    units = sorted(p.name for p in (out / "rollouts" / "units").rglob("*.parquet"))
    assert len(units) == 2 and not (out / "sweep.json").exists()
    before = {p: p.stat().st_mtime_ns for p in (out / "rollouts" / "units").rglob("*.parquet")}
    finish(sweep(out))
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())  # kept, not redone

    def report(folder: Path) -> dict:
        data = json.loads((folder / "sweep.json").read_text())
        data["config"].pop("output")
        return data

    assert report(out) == report(reference)
