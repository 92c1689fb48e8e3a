"""``LambdaRanker``, ``dami-pref select`` and ``dami-pref export`` on a ranker trained here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import run_in_process
from dami_pref.cli import main
from dami_pref.errors import DamiPrefError
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

QUESTIONS = ["3+4", "12+7+19", "5+18+2+11+9", "17+3+12+9+15+6+11+18"]


@pytest.fixture(scope="module")
def ranker_dir(session_ranker) -> Path:
    return session_ranker


@pytest.fixture(scope="module")
def ranker(ranker_dir):
    from dami_pref import LambdaRanker

    return LambdaRanker.from_pretrained(ranker_dir, device="cpu")


def test_score_and_select(ranker):
    scores = ranker.score(QUESTIONS)
    assert scores.shape == (4, len(ranker.grid)) and torch.isfinite(scores).all()
    assert ranker.select(QUESTIONS, cost_weight=0) == [ranker.grid[i]
                                                       for i in scores.argmax(1).tolist()]
    batched, alone = ranker.score(QUESTIONS, batch_size=4), ranker.score(QUESTIONS[:1])
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)


def test_cost_knob_moves_towards_cheaper_lambda(ranker):
    costs = ranker.expected_costs()
    stored = [ranker.config["lambda_costs"][f"{lam:g}"] for lam in ranker.grid]  # mean tokens
    torch.testing.assert_close(costs.cpu(), torch.tensor(stored) / max(stored))
    assert costs.max().item() == pytest.approx(1.0) and costs[0] < costs[-1]
    betas = (-1e6, -1.0, 0.0, 1.0, 1e6)
    lams = {beta: ranker.select(QUESTIONS * 5, cost_weight=beta) for beta in betas}
    spent = {beta: sum(costs[ranker.grid.index(x)].item() for x in v) for beta, v in lams.items()}
    assert spent[-1e6] >= spent[-1.0] >= spent[0.0] >= spent[1.0] >= spent[1e6]
    assert set(lams[1e6]) == {ranker.grid[int(costs.argmin())]}  # β → ∞: the cheapest λ
    assert set(lams[-1e6]) == {ranker.grid[int(costs.argmax())]}  # β → −∞: the dearest λ


def test_long_questions_keep_their_end(ranker):
    tail = "+".join(["1"] * 200) + "+2"
    starts_differ = ["7+" + tail, "9+9+9+" + tail]  # equal in their last max_length tokens
    with pytest.warns(UserWarning, match="cut to their last tokens"):
        scores = ranker.score(starts_differ)
    assert torch.allclose(scores[0], scores[1], atol=1e-5)  # the start was cut, the end kept
    ends_differ = [tail + "+3", tail + "+4"]
    with pytest.warns(UserWarning, match="cut to their last tokens"):
        assert not torch.allclose(*ranker.score(ends_differ), atol=1e-5)
    with pytest.warns(UserWarning, match="cut to their last tokens"):
        [lam] = ranker.select([starts_differ[0]])
    assert lam in ranker.grid


def test_a_huge_question_is_scored_on_its_end_and_refused_for_answers(ranker_dir, ranker,
                                                                      tmp_path):
    """4 MB of question: the ranker reads its end (the same scores as its last 2,000
    characters, never tokenizing the rest); answering it is refused, naming file and id."""
    tail = "+".join(["1"] * 1000) + "+2"
    huge = "9+" * 2_000_000 + tail
    with pytest.warns(UserWarning, match="cut to their last tokens"):
        scores = ranker.score([huge, "7+" + tail])
    assert torch.allclose(scores[0], scores[1], atol=1e-5)
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "big", "question": huge}) + "\n")
    proc = run_in_process("select", "--ranker", str(ranker_dir), "--device", "cpu", "--input",
                          str(questions), "--generate")
    assert proc.returncode == 2 and f"{questions}: question 'big' is 4,002,001 characters" in \
        proc.stderr, proc.stderr


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_in_process(*args, stdin=stdin)


def test_select_file_in_order_and_generate_matches_runtime(ranker_dir, ranker, tmp_path):
    from dami_pref.runtime.generation import GenerationRequest
    from dami_pref.runtime import InterpolationRuntime

    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"id": f"x{i}", "question": q}) + "\n"
                            for i, q in enumerate(QUESTIONS)))
    proc = run_cli("select", "--ranker", str(ranker_dir), "--input", str(path), "--generate",
                   "--device", "cpu", "--max_new_tokens", "100", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["x0", "x1", "x2", "x3"]
    assert [r["lambda"] for r in rows] == ranker.select(QUESTIONS)
    assert all(set(r["scores"]) == {f"{g:g}" for g in ranker.grid} for r in rows)
    runtime = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")
    direct = runtime.generate([GenerationRequest(r["question"], r["lambda"]) for r in rows])
    assert [r["completion"] for r in rows] == [d.completion for d in direct]
    assert [r["n_tokens"] for r in rows] == [d.n_tokens for d in direct]


def test_select_generates_as_the_rankers_rollouts_did(ranker_dir, ranker):
    """The ranker records its pair and how the rollouts generated; ``select --generate``
    without --max_new_tokens or --prompt_template uses them."""
    from helpers import ROLLOUT_BUDGET

    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    generation = ranker.pair["generation"]
    assert generation["max_new_tokens"] == ROLLOUT_BUDGET
    assert generation["prompt_template"] == "{question}"
    assert ranker.pair["instruct"]["name"] == "dami_pref://toy/instruct"
    proc = run_cli("select", "--ranker", str(ranker_dir), "--question", *QUESTIONS,
                   "--generate", "--device", "cpu", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    runtime = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")
    direct = runtime.generate([GenerationRequest(r["question"], r["lambda"]) for r in rows],
                              DecodingOptions(max_new_tokens=ROLLOUT_BUDGET))
    assert [r["n_tokens"] for r in rows] == [d.n_tokens for d in direct]
    assert [r["completion"] for r in rows] == [d.completion for d in direct]
    assert max(r["n_tokens"] for r in rows) <= ROLLOUT_BUDGET


def test_select_from_stdin_text_and_table(ranker_dir, tmp_path):
    proc = run_cli("select", "--ranker", str(ranker_dir), "--device", "cpu", "--format",
                   "table", stdin="3+4\n\n9+9+9\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("| id | λ | question |") and "| q00001 |" in proc.stdout
    out = tmp_path / "out.jsonl"
    proc = run_cli("select", "--ranker", str(ranker_dir), "--device", "cpu", "--question", "1+2",
                   "--grid", "0,1", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    [row] = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["lambda"] in (0.0, 1.0) and set(row["scores"]) == {"0", "1"}


@pytest.mark.parametrize("setup, message", [
    ("empty", "no questions"),
    ("latin1", "not UTF-8"),
    ("noquestion", "line 2: no 'question' field"),
    ("grid", "not in the ranker's grid"),
    ("noadapter", "missing ['adapter_model.safetensors']"),
    ("noconfig", "missing ['dami_pref.json']"),
    ("future", "newer than this dami-pref understands"),
    ("notokenizer", "missing ['tokenizer_config.json']"),
    ("brokentokenizer", "cannot load the ranker's tokenizer"),
    ("corruptadapter", "cannot load the LoRA adapter"),
    ("scoreshape", "cannot load the LoRA adapter"),
    ("nanscore", "hold NaN or inf"),
    ("oldformat", "train it again with this dami-pref"),
])
def test_select_bad_input(ranker_dir, tmp_path, capsys, setup, message):
    ranker = tmp_path / "ranker"
    shutil.copytree(ranker_dir, ranker)
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "1+2"}\n')
    extra = []
    if setup == "empty":
        path.write_text("\n\n")
    elif setup == "latin1":
        path = tmp_path / "q.txt"
        path.write_bytes("caf\xe9 1+2\n".encode("latin-1"))
    elif setup == "noquestion":
        path.write_text('{"question": "1+2"}\n{"id": "b"}\n')
    elif setup == "grid":
        extra = ["--grid", "0.05"]
    elif setup == "noadapter":
        (ranker / "adapter_model.safetensors").unlink()
    elif setup == "noconfig":
        (ranker / "dami_pref.json").unlink()
    elif setup == "notokenizer":
        (ranker / "tokenizer_config.json").unlink()
    elif setup == "brokentokenizer":
        (ranker / "tokenizer.json").write_text("{not json")
    elif setup == "corruptadapter":
        (ranker / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    elif setup in ("scoreshape", "nanscore"):  # a NaN ranker would pick λ=0 silently
        from safetensors.torch import load_file, save_file

        adapter = load_file(str(ranker / "adapter_model.safetensors"))
        name = next(k for k in adapter if "score" in k)
        adapter[name] = torch.zeros(*(s + 1 for s in adapter[name].shape)) \
            if setup == "scoreshape" else torch.full_like(adapter[name], float("nan"))
        save_file(adapter, str(ranker / "adapter_model.safetensors"))
    elif setup == "oldformat":
        config = json.loads((ranker / "dami_pref.json").read_text())
        config["format_version"] = 1
        (ranker / "dami_pref.json").write_text(json.dumps(config))
    elif setup == "future":
        config = json.loads((ranker / "dami_pref.json").read_text())
        config["format_version"] = 99
        (ranker / "dami_pref.json").write_text(json.dumps(config))
    code = main(["select", "--ranker", str(ranker), "--input", str(path), "--device", "cpu",
                 *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.slow  # a fresh interpreter: the Hub endpoint is read when huggingface_hub loads
def test_push_without_network_fails_clearly_and_keeps_the_folder(ranker_dir, tmp_path):
    out = tmp_path / "export"
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_not_a_real_token",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    exe = shutil.which("dami-pref")
    proc = subprocess.run([exe, "export", "--ranker", str(ranker_dir), "--out", str(out),
                           "--repo-id", "someone/toy-ranker", "--push"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert "uploading" in proc.stderr and "folder is complete and unchanged" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "README.md").is_file() and (out / "model.safetensors").is_file()


def test_export_needs_repo_id_to_push(ranker_dir, tmp_path):
    from dami_pref.ranker.export import export_ranker

    with pytest.raises(DamiPrefError, match="--push needs --repo_id"):
        export_ranker(ranker_dir, tmp_path / "e", push=True)
    assert not (tmp_path / "e").exists()


def test_cost_knob_falls_back_to_lambda_without_stored_costs(ranker_dir, tmp_path):
    from dami_pref import LambdaRanker

    folder = tmp_path / "ranker"
    shutil.copytree(ranker_dir, folder)
    config = json.loads((folder / "dami_pref.json").read_text())
    del config["lambda_costs"]
    (folder / "dami_pref.json").write_text(json.dumps(config))
    ranker = LambdaRanker.from_pretrained(folder, device="cpu")
    torch.testing.assert_close(ranker.expected_costs().cpu(), torch.tensor(ranker.grid))


def test_a_byte_order_mark_is_not_part_of_the_first_question(tmp_path):
    """JSONL and text saved with a UTF-8 BOM read as without it: ids kept, JSON not taken as
    question text."""
    import io

    from dami_pref.data.questions import read_questions

    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"id": "a", "question": "1+2"}\n{"id": "b", "question": "3+4"}\n',
                     encoding="utf-8-sig")
    assert [(q.id, q.question) for q in read_questions(path=str(jsonl))] == \
        [("a", "1+2"), ("b", "3+4")]
    text = tmp_path / "q.txt"
    text.write_text("1+2\n3+4\n", encoding="utf-8-sig")
    assert [q.question for q in read_questions(path=str(text))] == ["1+2", "3+4"]
    assert [q.id for q in read_questions(stdin=io.StringIO("\ufeff{\"id\": \"z\", "
                                                           "\"question\": \"5\"}"))] == ["z"]
