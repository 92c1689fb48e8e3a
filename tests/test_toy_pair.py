"""The bundled toy pair: its tokenizer, the properties it must keep, and the script that builds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING, toy_problems_path

ROOT = Path(__file__).resolve().parents[1]


def test_tokenizer_round_trip_and_thinking_tags():
    from transformers import AutoTokenizer

    for folder in (TOY_INSTRUCT, TOY_THINKING):
        tok = AutoTokenizer.from_pretrained(folder)
        text = "17+3+12=<think>17+3=20,20-3=17;20+12=32|17+3=20</think>32"
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        for tag in ("<think>", "</think>"):
            [tag_id] = tok(tag, add_special_tokens=False)["input_ids"]  # one token each
            assert tok.convert_ids_to_tokens(tag_id) == tag
        assert tok.pad_token_id is not None and tok.eos_token_id is not None
        messages = [{"role": "user", "content": "2+2"}]
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert "2+2" in prompt


@pytest.mark.slow
@pytest.mark.timeout(2400)  # sweeps a whole split at every λ: minutes alone, more on a busy machine
@pytest.mark.parametrize("split", ["validation", "test"])
def test_committed_pair_has_every_required_property(split, tmp_path):
    """A greedy sweep of the committed pair on its whole validation and test sets, at the
    configs' budget, meets every property README lists (the same check as ``dami-pref toy``),
    and the best static λ on validation is the one the toy's constants name."""
    from dami_pref.data.problems import load_problems
    from dami_pref.evaluation.sweep import run_sweep, sweep_report
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.toy import TOY_BEST_STATIC_LAMBDA, TOY_BUDGET
    from dami_pref.toy.properties import best_static_lambda, check_properties, format_properties
    from dami_pref.utils.grid import parse_grid

    for config in ("rollout", "eval"):  # the budget the properties are measured at
        assert yaml.safe_load((ROOT / "configs/toy" / f"{config}.yaml").read_text())[
            "max_new_tokens"] == TOY_BUDGET
    problems = load_problems(toy_problems_path(split))
    outcomes = run_sweep(InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu"),
                         problems, parse_grid("0:1:0.1"),
                         DecodingOptions(max_new_tokens=TOY_BUDGET, batch_size=128),
                         tmp_path / "rollouts", pair={"toy": "committed"}, progress=False)
    report = sweep_report(outcomes, config={})
    rows = check_properties(report, {p.id: p.question for p in problems})
    assert len(rows) == 8 and all(ok for _, _, ok in rows), "\n" + format_properties(rows)
    if split == "validation":
        assert best_static_lambda(report) == TOY_BEST_STATIC_LAMBDA


def test_properties_fail_on_the_old_kind_of_pair():
    """The checks can fail: a perfect Thinking model whose frontier dips, traces that do not
    lengthen, and an oracle no better than Thinking are each named."""
    from dami_pref.toy.properties import check_properties

    questions = {f"q{i}": f"{i % 7 + 1}+{i % 5}" for i in range(40)}

    def row(lam, correct, tokens, think):
        results = [{"id": q, "correct": correct(i), "n_tokens": tokens, "think_tokens": think}
                   for i, q in enumerate(questions)]
        return {"lambda": lam, "accuracy": sum(r["correct"] for r in results) / len(results),
                "mean_tokens": tokens, "think_rate": float(think > 0), "results": results}

    rows = [row(lam / 10, (lambda i: i % 3 != 0) if lam < 3 else (lambda i: i % 2 == 0) if lam
                < 6 else (lambda i: True), 3 if lam < 6 else 30, 0 if lam < 6 else 27)
            for lam in range(11)]
    report = {"lambdas": rows, "oracle": {"accuracy": 1.0, "tokens_relative_to_thinking": 0.4}}
    holds = {name: ok for name, _, ok in check_properties(report, questions)}
    assert [name for name, ok in holds.items() if not ok] == [
        "Thinking 80–95 %, Instruct 35–75 %", "accuracy never drops > 2 pts up to the best λ",
        "a λ in [0.5, 0.9] ≥ Thinking's accuracy (−0.5) at ≤ 85 % of its tokens",
        "≥ 3 grid points think on some questions only",
        "thinking tokens at λ=1 ≥ 1.15 × at the first thinking λ",
        "oracle ≥ Thinking + 5 pts with ≤ 50 % of its tokens",
        "Instruct's correctness predictable from the question: ROC-AUC ≥ 0.85"]


@pytest.mark.slow
def test_toy_pair_script_builds_a_loadable_pair(tmp_path):
    """The build script end to end at a tiny size (the real recipe is in dami_pref/toy/build.json)."""
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest
    from dami_pref.runtime import InterpolationRuntime

    out = tmp_path / "toy"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "data_builders" / "toy_pair.py"), "--output", str(out),
         "--pretrain_steps", "5", "--instruct_steps", "2", "--thinking_steps", "2",
         "--n_train", "50", "--n_validation", "10", "--n_test", "45", "--hidden_size", "32",
         "--num_layers", "1", "--intermediate_size", "64", "--check", "false"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for role in ("base", "instruct", "thinking"):
        assert (out / role / "model.safetensors").is_file() and (out / role / "README.md").is_file()
    counts = {split: len((out / "problems" / f"{split}.jsonl").read_text().splitlines())
              for split in ("train", "validation", "test")}
    assert counts == {"train": 50, "validation": 10, "test": 45}
    assert json.loads((out / "build.json").read_text())["args"]["seed"] == 0
    runtime = InterpolationRuntime(out / "instruct", out / "thinking", device="cpu")
    [result] = runtime.generate([GenerationRequest("1+2", 0.5)],
                                DecodingOptions(max_new_tokens=8, batch_size=1))
    assert result.n_tokens >= 1
