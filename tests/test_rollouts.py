"""Rollouts and pairs on the toy pair: resume after a kill, 1 vs 2 processes, bad input, TRL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dami_pref.utils.io import is_temporary, write_jsonl
from helpers import run_on_free_port
from dami_pref.toy import toy_problems_path

ROOT = Path(__file__).resolve().parents[1]
ROLLOUT = str(ROOT / "data_builders" / "rollout.py")
PAIRS = str(ROOT / "data_builders" / "pairs.py")
# A small, quick configuration: 24 problems in 6 shards, 3 λ values.
SMALL = ["--limit", "24", "--shard_size", "4", "--grid", "0,0.5,1", "--max_new_tokens", "80",
         "--batch_size", "8", "--device", "cpu", "--no-progress"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def rollout(out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, ROLLOUT, "--output", str(out), *SMALL, *extra],
                          capture_output=True, text=True, timeout=600, env=env())
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_here(capsys, command: str, *argv: str) -> tuple[int, str, str]:
    """A command run in this process (no interpreter start): status, stdout, stderr."""
    from helpers import run_in_process

    proc = run_in_process(command, *argv)
    return proc.returncode, proc.stdout, proc.stderr


def rollout_here(capsys, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_here(capsys, "rollout", "--output", str(out), *SMALL, *extra)


def comparable(folder: Path) -> list[dict]:
    """The rollout table without the wall-time column, which no two runs share."""
    table = pq.read_table(folder / "rollouts.parquet").drop_columns(["seconds"])
    return table.to_pylist()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rollouts") / "reference"
    proc = rollout(out)
    assert "| λ | accuracy |" in proc.stdout
    return out


def test_rollout_table_contents(reference):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 24 * 3 and manifest["n_units"] == 18
    rows = comparable(reference)
    assert [(r["lambda"], r["sample"]) for r in rows[:3]] == [(0.0, 0), (0.5, 0), (1.0, 0)]
    for r in rows:
        if r["lambda"] == 1.0:
            assert r["think_tokens"] > 0 and r["completion"].startswith("<think>")
        if r["lambda"] == 0.0:
            assert r["think_tokens"] == 0 and r["n_tokens"] <= 4
    assert len(list((reference / "units").rglob("*.parquet"))) == 18


@pytest.mark.slow
def test_killed_rollout_resumes_to_the_same_table(tmp_path, reference):
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, ROLLOUT, "--output", str(out), *SMALL],
                          capture_output=True, timeout=600,
                          env={**env(), "DAMI_PREF_CRASH_AT": "unit-written:3"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "units").rglob("*.parquet")
                   if not is_temporary(p)}
    assert len(done_before) == 3
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    assert not (out / "rollouts.parquet").exists()
    restarted = rollout(out)
    assert f"skipped {len(done_before)} finished unit(s)" in restarted.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (out / "units").rglob("*.parquet")}
    assert not any(is_temporary(p) for p in after)  # the killed run's temporary is cleaned up
    assert all(after[name] == mtime for name, mtime in done_before.items())  # kept, not redone
    assert comparable(out) == comparable(reference)


@pytest.mark.slow
@pytest.mark.parametrize("write", [1, 2])
def test_a_rollout_killed_at_its_first_writes_resumes(tmp_path, reference, write):
    """Killed writing the manifest (only the toolkit's temporary is in the folder) or the
    problems table: the same command resumes, and no temporary stays in the finished folder."""
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, ROLLOUT, "--output", str(out), *SMALL],
                          capture_output=True, timeout=600,
                          env={**env(), "DAMI_PREF_CRASH_AT": f"file-written:{write}"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert any(is_temporary(p) for p in out.iterdir())
    rollout(out)
    assert not [p for p in out.rglob(".*") if is_temporary(p)]
    assert comparable(out) == comparable(reference)


def launch_two(*args: str) -> subprocess.CompletedProcess:
    """``accelerate launch`` with two CPU processes on a free rendezvous port."""
    return run_on_free_port(lambda port: subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
         str(ROOT / "configs" / "accelerate" / "cpu.yaml"), "--num_processes", "2",
         "--main_process_port", str(port), *args],
        capture_output=True, text=True, timeout=600, env=env()))


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, reference):
    out = tmp_path / "two"
    proc = launch_two(ROLLOUT, "--output", str(out), *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(process 2/2)" not in proc.stdout  # only the main process reports
    assert comparable(out) == comparable(reference)


def test_restart_with_other_settings_is_refused_and_keeps_data(tmp_path, reference, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    before = sorted(p.name for p in out.rglob("*.parquet"))
    for extra, message in (
            (["--grid", "0,1"], "other settings (different: grid"),
            (["--thinking", str(toy_problems_path().parents[1] / "base")], "different: pair"),
            (["--memory_mode", "delta"], "different: pair"),
            (["--kv_cache", "quantized-4"], "other settings"),  # a lossy cache changes answers
            (["--temperature", "0.9"], "--sample_temperature 0.9")):
        code, _, err = rollout_here(capsys, out, *extra)
        assert code == 2 and message in err, (extra, err)
    assert sorted(p.name for p in out.rglob("*.parquet")) == before
    code, stdout, _ = rollout_here(capsys, out)  # same settings: nothing left to do
    assert code == 0 and "skipped 18 finished unit(s)" in stdout


def test_corrupt_unit_is_named(tmp_path, reference, capsys):
    import shutil

    out = tmp_path / "corrupt"
    shutil.copytree(reference, out)
    victim = next((out / "units").rglob("shard-00002.parquet"))
    victim.write_bytes(b"not parquet at all")
    code, _, err = rollout_here(capsys, out)
    assert code == 2
    assert victim.name in err and "delete this file" in err
    assert victim.read_bytes() == b"not parquet at all"  # never silently replaced


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a", "question": "1+2"}], "missing field 'answer'"),
    ([{"question": "1+2", "answer": "3"}], "missing field 'id'"),
    ([{"id": "a", "question": "1+2", "answer": "3"}, {"id": "a", "question": "2+2", "answer": "4"}],
     "duplicate id 'a'"),
    ([], "no problems"),
])
def test_bad_problems(tmp_path, rows, message, capsys):
    path = tmp_path / "p.jsonl"
    write_jsonl(rows, path)
    code, _, err = run_here(capsys, "rollout", "--problems", str(path), "--output",
                            str(tmp_path / "out"))
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def pairs_folder(reference, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pairs") / "pairs"
    proc = subprocess.run([sys.executable, PAIRS, "--rollouts", str(reference), "--output",
                           str(out), "--validation_fraction", "0.25"], capture_output=True,
                          text=True, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "problems with no signal" in proc.stdout
    return out


def test_pairs_folder(pairs_folder, reference):
    from dami_pref.data.pair_dataset import load_pair_dataset
    from dami_pref.data.preferences import PairOptions, candidates_from_rows, pairs_for_problem

    dataset, candidates, oracle, summary = load_pair_dataset(pairs_folder)
    assert summary["problems"] == {"train": 18, "validation": 6}
    train_ids = set(dataset["train"]["problem_id"])
    assert not train_ids & set(dataset["validation"]["problem_id"])
    # every pair is the preference rule applied to the rollouts
    rows = pq.read_table(reference / "rollouts.parquet").to_pylist()
    expected = sum(len(pairs_for_problem(c, PairOptions()))
                   for c in candidates_from_rows(rows).values())
    assert len(dataset["train"]) + len(dataset["validation"]) == expected
    from transformers import AutoTokenizer

    from dami_pref.toy import TOY_BASE

    toy = AutoTokenizer.from_pretrained(TOY_BASE)  # --prompt_tokenizer toy: the toy chat template
    for pair in dataset["train"]:
        assert (pair["chosen_acc"] > pair["rejected_acc"]
                or pair["chosen_cost"] < pair["rejected_cost"])
        assert pair["prompt"] == toy.apply_chat_template(
            [{"role": "user", "content": pair["question"]}], tokenize=False,
            add_generation_prompt=True)
    assert candidates.num_rows == 24 * 3 and oracle.num_rows == 24
    assert (pairs_folder / "parquet" / "train.parquet").is_file()
    card = (pairs_folder / "README.md").read_text()
    assert "problems with no signal" in card and card.startswith("---\n")
    assert (pairs_folder / "lambda_star.png").read_bytes()[:4] == b"\x89PNG"


def test_pairs_refuses_unfinished_rollouts(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text(json.dumps({"format_version": 1,
                                                              "complete": False}))
    code, _, err = run_here(capsys, "pairs", "--rollouts", str(tmp_path / "r"), "--output",
                            str(tmp_path / "p"))
    assert code == 2 and "not finished" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_text_columns_train_trl_reward_trainer(pairs_folder, tmp_path):
    """TRL's RewardTrainer reads prompt/chosen/rejected: the toy base as a one-label classifier."""
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from dami_pref.toy import TOY_BASE

    train = datasets.load_from_disk(str(pairs_folder / "dataset"))["train"]
    train = train.select_columns(["prompt", "chosen", "rejected"]).select(range(8))
    model = AutoModelForSequenceClassification.from_pretrained(TOY_BASE, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(TOY_BASE)
    args = RewardConfig(output_dir=str(tmp_path / "rm"), max_steps=2, per_device_train_batch_size=4,
                        report_to=[], use_cpu=True, logging_steps=1, save_strategy="no")
    trainer = RewardTrainer(model=model, args=args, train_dataset=train,
                            processing_class=tokenizer)
    before = model.score.weight.detach().clone()
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0
    assert not model.score.weight.detach().equal(before)


@pytest.mark.slow
def test_sampled_rollouts_do_not_depend_on_batches_or_processes(tmp_path):
    """k samples per (problem, λ) from per-request seeds: the same table whatever the batch
    size or the number of processes."""
    from collections import defaultdict

    sampled = ["--samples", "2", "--sample_temperature", "1.0", "--limit", "12"]
    rollout(tmp_path / "one", *sampled)
    rows = comparable(tmp_path / "one")
    assert len(rows) == 12 * 3 * 2 and {r["sample"] for r in rows} == {0, 1}
    completions = defaultdict(set)
    for r in rows:
        completions[(r["problem_id"], r["lambda"])].add(r["completion"])
    assert any(len(c) > 1 for c in completions.values())  # it really sampled
    rollout(tmp_path / "small_batches", *sampled, "--batch_size", "3")
    assert comparable(tmp_path / "small_batches") == rows
    proc = launch_two(ROLLOUT, "--output", str(tmp_path / "two"), *SMALL, *sampled)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert comparable(tmp_path / "two") == rows
