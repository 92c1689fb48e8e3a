"""The ``dami-pref`` console script: sweep and merge end to end, and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from dami_pref.cli import main
from dami_pref.utils.io import write_jsonl
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING


def run_cli(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("dami-pref")
    cmd = [exe] if exe else [sys.executable, "-m", "dami_pref.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=600)


def test_sweep_on_the_toy_pair_writes_table_json_and_plot(tmp_path):
    out = tmp_path / "sweep"
    proc = run_cli("sweep", "--limit", "21", "--grid", "0,0.5,1", "--output", str(out),
                   "--device", "cpu", "--max-new-tokens", "100", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "| λ | accuracy | mean tokens | think rate | malformed |" in proc.stdout
    assert "oracle (cheapest correct λ per problem)" in proc.stdout
    report = json.loads((out / "sweep.json").read_text())
    assert [row["lambda"] for row in report["lambdas"]] == [0.0, 0.5, 1.0]
    for row in report["lambdas"]:
        assert len(row["results"]) == 21
        assert {"accuracy", "mean_tokens", "think_rate", "malformed_rate"} <= set(row)
    instruct, thinking = report["lambdas"][0], report["lambdas"][-1]
    assert instruct["think_rate"] == 0.0 and thinking["think_rate"] == 1.0
    assert thinking["mean_tokens"] > 4 * instruct["mean_tokens"]
    oracle = report["oracle"]
    assert oracle["accuracy"] >= max(r["accuracy"] for r in report["lambdas"])
    assert set(oracle["lambdas"]) == {r["id"] for r in thinking["results"]}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "sweep.md").read_text().startswith("| λ |")


def test_merge_reloads_equal_to_the_runtime(tmp_path, tiny_pair):
    from transformers import AutoModelForCausalLM

    from dami_pref.runtime import InterpolationRuntime

    instruct, thinking = tiny_pair
    out = tmp_path / "merged"
    proc = run_cli("merge", "--lambda", "0.35", "--out", str(out), "--instruct", str(instruct),
                   "--thinking", str(thinking))
    assert proc.returncode == 0, proc.stderr
    merged = AutoModelForCausalLM.from_pretrained(out)
    runtime = InterpolationRuntime(instruct, thinking, device="cpu")
    runtime.set_lambda(0.35)
    live = dict(runtime.model.named_parameters())
    for name, param in merged.named_parameters():
        assert torch.equal(param, live[name]), name
    assert json.loads((out / "dami_pref_merge.json").read_text())["lambda"] == 0.35
    assert (out / "tokenizer.json").is_file()


def test_merge_bf16_matches_runtime_and_endpoints_exact(tmp_path, tiny_pair_bf16):
    from transformers import AutoModelForCausalLM

    from dami_pref.runtime.merge import merge_pair
    from dami_pref.runtime import InterpolationRuntime
    from helpers import load_safetensors_dir

    instruct, thinking = tiny_pair_bf16
    runtime = InterpolationRuntime(instruct, thinking, device="cpu")
    for lam in (0.0, 0.6, 1.0):
        out = merge_pair(lam, tmp_path / f"m{lam}", instruct, thinking)
        merged = AutoModelForCausalLM.from_pretrained(out)
        runtime.set_lambda(lam)
        live = dict(runtime.model.named_parameters())
        for name, param in merged.named_parameters():
            assert param.dtype == torch.bfloat16
            assert torch.equal(param, live[name]), (lam, name)
    assert load_safetensors_dir(tmp_path / "m1.0").keys() == load_safetensors_dir(thinking).keys()


def test_merge_dtype_option_is_recorded(tmp_path, tiny_pair):
    from dami_pref.runtime.merge import merge_pair

    out = merge_pair(0.5, tmp_path / "m", *tiny_pair, dtype="bfloat16")
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    from helpers import load_safetensors_dir

    assert all(t.dtype == torch.bfloat16 for t in load_safetensors_dir(out).values())


@pytest.mark.parametrize("args, message", [
    (["merge", "--lambda", "1.5", "--out", "OUT"], "λ must be in [0, 1]"),
    (["merge", "--lambda", "nan", "--out", "OUT"], "--lambda must be a finite number"),
    (["sweep", "--grid", "0:2:0.5", "--output", "OUT"], "outside [0, 1]"),
    (["sweep", "--problems", "EMPTY", "--output", "OUT"], "no problems"),
    (["sweep", "--problems", "BROKEN", "--output", "OUT"], "line 2: not valid JSON"),
    (["sweep", "--problems", "NOFIELD", "--output", "OUT"], "missing field 'answer'"),
    (["sweep", "--problems", "MISSING", "--output", "OUT"], "not found"),
    (["sweep", "--instruct", "NOMODEL", "--output", "OUT"], "model folder not found"),
    (["sweep", "--bogus", "1", "--output", "OUT"], "unknown argument"),
    (["sweep", "--memory_mode", "lean", "--output", "OUT"], "memory_mode must be one of"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys, args, message):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken.jsonl").write_text('{"id": "a", "question": "1+1", "answer": "2"}\n{oops\n')
    write_jsonl([{"id": "a", "question": "1+1"}], tmp_path / "nofield.jsonl")
    subst = {"OUT": str(tmp_path / "out"), "EMPTY": str(tmp_path / "empty.jsonl"),
             "BROKEN": str(tmp_path / "broken.jsonl"), "NOFIELD": str(tmp_path / "nofield.jsonl"),
             "MISSING": str(tmp_path / "missing.jsonl"), "NOMODEL": str(tmp_path / "no_model")}
    code = main([subst.get(a, a) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_merged_weights_are_as_readable_as_every_other_output(tmp_path):
    """The safetensors writer makes its files private; the merge's weights get the umask's mode
    like its JSON files do."""
    old = os.umask(0o022)
    try:
        code = main(["merge", "--lambda", "0.5", "--output", str(tmp_path / "m")])
    finally:
        os.umask(old)
    assert code == 0
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert modes["model.safetensors"] == 0o644 and modes["config.json"] == 0o644


def test_merge_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = main(["merge", "--lambda", "0.5", "--out", str(out)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "sweep" in out and "merge" in out
    assert main(["nope"]) == 2


def test_toy_pair_defaults_exist():
    for folder in (TOY_INSTRUCT, TOY_THINKING):
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def test_sweep_in_delta_memory_mode(tmp_path):
    """Every command that loads a pair takes --memory_mode; delta answers like exact here."""
    tables = {}
    for mode in ("exact", "delta"):
        out = tmp_path / mode
        code = main(["sweep", "--memory_mode", mode, "--limit", "12", "--grid", "0,0.5,1",
                     "--output", str(out), "--device", "cpu", "--no-progress"])
        assert code == 0
        report = json.loads((out / "sweep.json").read_text())
        assert report["config"]["memory_mode"] == mode
        tables[mode] = [(row["lambda"], [(r["answer"], r["n_tokens"]) for r in row["results"]])
                        for row in report["lambdas"]]
    assert tables["delta"] == tables["exact"]


def test_mismatched_pair_is_a_clear_error_on_the_command_line(tmp_path, capsys):
    from helpers import make_pair

    instruct, thinking = make_pair(tmp_path, thinking_overrides={"intermediate_size": 48})
    out = tmp_path / "out"
    code = main(["sweep", "--instruct", str(instruct), "--thinking", str(thinking), "--output",
                 str(out), "--device", "cpu", "--limit", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "intermediate_size" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["merge", "lmc", "sweep"])
def test_non_finite_weights_are_named(tmp_path, tiny_pair, capsys, command):
    """A checkpoint with an all-NaN tensor is refused before it is merged, compared or run."""
    from safetensors.torch import load_file, save_file

    instruct, thinking = tiny_pair
    broken = tmp_path / "thinking"
    shutil.copytree(thinking, broken)
    weights = load_file(str(broken / "model.safetensors"))
    name = sorted(weights)[-1]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "out"
    extra = {"merge": ["--lambda", "0.5", "--out", str(out)], "lmc": [],
             "sweep": ["--limit", "2", "--output", str(out)]}[command]
    code = main([command, "--instruct", str(instruct), "--thinking", str(broken), *extra])
    err = capsys.readouterr().err
    assert code == 2 and "hold NaN or inf" in err and name in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["rollout", "pairs", "eval", "sweep", "merge",
                                     "lmc", "select", "export", "serve", "toy"])
def test_help_and_usage_errors_answer_at_once(command, tmp_path):
    """The libraries load after parsing: --help and a usage error cost well under a second of
    CPU (measured with the CPU clock, so a busy machine does not move it). ``train``'s options
    are TrainingArguments, whose import takes seconds, as in TRL's own scripts."""
    import resource
    import subprocess
    import sys

    env = dict(os.environ)
    first = subprocess.run([sys.executable, "-m", "dami_pref.cli", command, "--help"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0 and first.stdout.startswith(f"usage: dami-pref {command}")
    for argv, code in (([command, "--help"], 0), ([command, "--no_such_option", "1"], 2)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "dami_pref.cli", *argv],
                              capture_output=True, text=True, timeout=120, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        assert proc.returncode == code, proc.stderr[-1000:]
        assert cpu < 1.0, f"dami-pref {' '.join(argv)}: {cpu:.2f} s of CPU"
        if code == 0:
            assert proc.stdout == first.stdout


def command_parser(command: str):
    """The parser a command builds, with the toolkit's formatter and ordering."""
    import importlib

    from dami_pref.cli import COMMANDS
    from dami_pref.cli.parsing import build_parser

    module_name, class_name, _ = COMMANDS[command]
    classes = getattr(importlib.import_module(f"dami_pref.cli.{module_name}"), class_name)
    parser, _ = build_parser(classes if isinstance(classes, tuple) else (classes,),
                             prog=f"dami-pref {command}")
    return parser


@pytest.mark.parametrize("command", ["rollout", "pairs", "eval", "sweep", "merge", "lmc",
                                     "select", "export", "serve", "toy"])
def test_every_option_has_help_and_one_default(command):
    parser = command_parser(command)
    text = parser.format_help()
    unexplained = [a.dest for a in parser._actions
                   if not a.help and not a.dest.startswith("no_")]
    assert unexplained == [], f"{command}: options without help: {unexplained}"
    assert "(default: None)" not in text and "(default: )" not in text
    for block in text.split("\n  --"):
        assert " ".join(block.split()).count("default:") <= 1, block
    assert not re.search(r"\[[A-Z_]+\]\]", parser.format_usage()), "a flag shows a value"


def test_help_lists_required_and_own_options_first():
    select = command_parser("select").format_usage()
    assert select.split()[4:6] == ["--ranker", "RANKER"]  # required, so not in brackets
    assert "[--generate]" in select and select.index("--question") < select.index("--device")
    train = command_parser("train").format_help()
    assert train.index("--objective") < train.index("--output_dir") < train.index("--adam_beta1")


def test_a_usage_error_is_one_line(capsys):
    assert main(["select", "--question", "1+1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dami-pref select: error: the following arguments are required: --ranker"
    assert main(["serve", "--ranker", "x", "--port", "eighty"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "dami-pref serve: error: argument --port: invalid int value: 'eighty'"]


def test_output_flags_are_spelled_alike_in_every_command(tmp_path):
    """--output and --overwrite everywhere; train's TRL names and merge's --out stay aliases."""
    from dami_pref.cli import rollout, train
    from dami_pref.cli.merge import MergeArgs
    from dami_pref.cli.parsing import parse_args

    script, config, _ = parse_args(train.ARGUMENTS, ["--output", str(tmp_path / "r"),
                                                     "--overwrite", "--use_cpu", "true"])
    assert config.output_dir == str(tmp_path / "r") and config.overwrite_output_dir
    args = parse_args(rollout.RolloutArgs, ["--output_dir", "x", "--overwrite_output_dir"])
    assert args.output == "x" and args.overwrite
    assert parse_args(MergeArgs, ["--lambda", "0.5", "--output", "m"]).output == "m"
    assert parse_args(MergeArgs, ["--lambda", "0.5", "--out", "m"]).output == "m"
    assert parse_args(MergeArgs, ["--lambda", "0.5", "--output_dir", "m"]).output == "m"
