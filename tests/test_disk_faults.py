"""A full or failing disk: one clear line naming the path, exit status 2, nothing half-written
under a final name, and earlier outputs intact, in every command that writes.

The disk fills for real here: each command runs in a subprocess whose files may not grow past a
size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write fails with EFBIG the way it fails with
ENOSPC on a full disk). Where this machine lets the test mount a small tmpfs, the same commands
also run against a disk that is really full (ENOSPC).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import quick_args, reset_accelerate_state
from dami_pref.toy import toy_problems_path
from dami_pref.utils.disk import disk_failure
from dami_pref.utils.io import is_temporary


def run_limited(args: list[str], limit_bytes: int | None, cwd: Path) -> subprocess.CompletedProcess:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONDONTWRITEBYTECODE": "1", "HF_DATASETS_CACHE": str(cwd / "hf-cache")}
    return subprocess.run([sys.executable, "-m", "dami_pref.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=cwd,
                          preexec_fn=limit if limit_bytes else None)


def assert_one_line_failure(proc: subprocess.CompletedProcess, where: Path) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"{where}" in lines[0] and "writing failed" in lines[0], lines[0]


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if is_temporary(p)]


def test_disk_failure_reads_every_librarys_error():
    from safetensors import SafetensorError

    assert disk_failure(OSError(errno.ENOSPC, "No space left on device")) == \
        "no space left on device"
    assert disk_failure(OSError(errno.EIO, "Input/output error")) == "an I/O error"
    wrapped = RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0"
                           "; basic_ios::clear: iostream error")
    assert disk_failure(wrapped) is not None
    assert disk_failure(SafetensorError("Error while serializing: I/O error: No space left on "
                                        "device (os error 28)")) == "no space left on device"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/x/y")
        except OSError as inner:
            raise ValueError("writing the table failed") from inner
    except ValueError as outer:
        assert disk_failure(outer) == "no space left on device"
    assert disk_failure(OSError(errno.ENOENT, "No such file")) is None
    assert disk_failure(ValueError("a bug")) is None


@pytest.fixture(scope="module")
def small_problems(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("problems") / "p8.jsonl"
    lines = toy_problems_path("test").read_text().splitlines()[:8]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained_ranker(toy_pairs, tmp_path_factory) -> Path:
    from dami_pref.ranker.training import train

    out = tmp_path_factory.mktemp("ranker") / "ranker"
    reset_accelerate_state()
    train(*quick_args(toy_pairs, out, max_steps=2, eval_steps=100))
    return out


@pytest.mark.slow
def test_merge_on_a_full_disk_keeps_the_old_folder(tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "old.txt").write_text("old")
    proc = run_limited(["merge", "--lambda", "0.3", "--out", str(out), "--overwrite"],
                       100_000, tmp_path)
    assert_one_line_failure(proc, out)
    assert [p.name for p in out.iterdir()] == ["old.txt"] and no_temporaries(tmp_path)


@pytest.mark.slow
def test_sweep_on_a_full_disk_keeps_every_old_output(tmp_path, small_problems):
    out = tmp_path / "sweep"
    out.mkdir()
    old = {name: f"old {name}" for name in ("sweep.json", "sweep.md", "pareto.png")}
    for name, text in old.items():
        (out / name).write_text(text)
    proc = run_limited(["sweep", "--problems", str(small_problems), "--grid", "0,1",
                        "--output", str(out), "--overwrite", "--max_new_tokens", "60"],
                       20_000, tmp_path)
    assert_one_line_failure(proc, out)
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == old
    assert no_temporaries(tmp_path)
    # what it rolled out before the disk filled stays, to resume from (as `rollout` keeps units)
    assert not (out / "rollouts").exists() or (out / "rollouts" / "manifest.json").is_file()


@pytest.mark.slow
def test_train_export_select_pairs_and_rollout_on_a_full_disk(tmp_path, toy_pairs,
                                                              trained_ranker, small_problems):
    cases = {
        "train": (["train", "--pairs", str(toy_pairs), "--output_dir", str(tmp_path / "t"),
                   "--max_steps", "4", "--save_steps", "2", "--report_to", "none"],
                  100_000, tmp_path / "t"),
        "export": (["export", "--ranker", str(trained_ranker), "--out", str(tmp_path / "e")],
                   100_000, tmp_path / "e"),
        "select": (["select", "--ranker", str(trained_ranker), "--input", str(small_problems),
                    "--output", str(tmp_path / "s.jsonl")], 300, tmp_path / "s.jsonl"),
        "pairs": (["pairs", "--rollouts", str(toy_pairs.parent / "rollouts"), "--output",
                   str(tmp_path / "p")], 2_000, tmp_path / "p"),
        "rollout": (["rollout", "--problems", str(small_problems), "--grid", "0,1",
                     "--output", str(tmp_path / "r"), "--max_new_tokens", "60"],
                    1_000, tmp_path / "r"),
        "eval": (["eval", "--test_problems", str(small_problems), "--validation_problems",
                  str(small_problems), "--methods", "static,best_static", "--modes", "offline",
                  "--grid", "0,1", "--max_new_tokens", "60", "--output", str(tmp_path / "v")],
                 3_000, tmp_path / "v"),
    }
    for name, (args, limit, where) in cases.items():
        proc = run_limited(args, limit, tmp_path)
        assert_one_line_failure(proc, where)
        final = {"train": where, "export": where, "select": where, "pairs": where,
                 "rollout": where / "rollouts.parquet", "eval": where / "results.json"}[name]
        assert not final.exists() or name == "train" and not any(final.iterdir()), name
        assert no_temporaries(tmp_path), name
    # the train run kept its complete checkpoints, so it can resume once there is space
    assert all((c / "trainer_state.json").is_file()
               for c in (tmp_path / "t-checkpoints").glob("checkpoint-*"))


def tmpfs_available(path: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def test_a_really_full_disk_says_no_space(tmp_path):
    disk = tmp_path / "disk"
    if not tmpfs_available(disk):
        pytest.skip("mounting a tmpfs needs root; the file-size limit tests above cover it")
    try:
        out = disk / "merged"
        proc = run_limited(["merge", "--lambda", "0.3", "--out", str(out)], None, tmp_path)
        assert_one_line_failure(proc, out)
        assert "no space left on device" in proc.stderr
        assert not out.exists() and not list(disk.iterdir())
    finally:
        subprocess.run(["umount", str(disk)], check=False)
