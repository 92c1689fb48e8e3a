"""Every λ in one transformers batch (``lambda_batching="mixed"``), on the toy pair: exact against
merged models, equal to λ-grouped generation, independent of batch neighbours, and refused for a
module that is not linear in its parameters."""

from __future__ import annotations

import pytest
import torch

from dami_pref.errors import DamiPrefError
from dami_pref.runtime import InterpolationRuntime
from dami_pref.runtime.generation import DecodingOptions, GenerationRequest, plan_batches
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING
from dami_pref.utils.tokens import left_pad

LAMS = (0.0, 0.3, 0.5, 1.0)


@pytest.fixture(scope="module")
def mixed() -> InterpolationRuntime:
    return InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, lambda_batching="mixed")


@pytest.fixture(scope="module")
def grouped() -> InterpolationRuntime:
    return InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING)


@pytest.fixture(scope="module")
def questions() -> list[str]:
    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path

    return [p.question for p in load_problems(toy_problems_path("test"))][:96]


def test_one_mixed_batch_matches_merged_folders(mixed, questions, tmp_path):
    """Row r of one forward at λ_r against ``dami-pref merge --lambda λ_r`` loaded by
    transformers: float32 logits within 1e-4 at every position."""
    from transformers import AutoModelForCausalLM

    from dami_pref.runtime.merge import merge_pair

    lams = [LAMS[i % len(LAMS)] for i in range(12)]
    ids, mask = left_pad(mixed.encode_prompts(questions[:12]), mixed.tokenizer.pad_token_id)
    with torch.no_grad(), mixed.mixed_rows(lams):
        logits = mixed.model(input_ids=ids, attention_mask=mask).logits
    worst = 0.0
    for lam in LAMS:
        folder = merge_pair(lam, tmp_path / f"merged-{lam}", TOY_INSTRUCT, TOY_THINKING)
        merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        rows = [r for r, x in enumerate(lams) if x == lam]
        with torch.no_grad():
            want = merged(input_ids=ids[rows], attention_mask=mask[rows]).logits
        keep = mask[rows].bool()
        worst = max(worst, float((logits[rows][keep] - want[keep]).abs().max()))
    assert worst <= 1e-4, worst
    assert mixed.lam == 0.0 and mixed.rows.values is None  # nothing left behind


def test_mixed_batches_answer_as_grouped_generation(mixed, grouped, questions):
    """Greedy completions of mixed batches (the groups' remainders) equal λ-grouped generation,
    and a request's answer does not depend on the λ of its batch neighbours."""
    options = DecodingOptions(max_new_tokens=160, batch_size=32)
    lams = [LAMS[i % len(LAMS)] for i in range(len(questions))]
    requests = [GenerationRequest(q, lam) for q, lam in zip(questions, lams)]
    assert all(len(set(lams[i] for i in b)) > 1 for b in plan_batches(
        lams, 0.0, mixed.encode_prompts(questions), 32, True))  # every batch mixes
    ours = mixed.generate(requests, options)
    theirs = grouped.generate(requests, options)
    assert [r.completion for r in ours] == [r.completion for r in theirs]
    assert [r.lam for r in ours] == lams
    neighbours = [GenerationRequest(questions[0], 1.0)] + [
        GenerationRequest(q, 0.0 if i % 2 else 0.5) for i, q in enumerate(questions[1:20])]
    alone = mixed.generate(neighbours[:1], options)[0]
    assert mixed.generate(neighbours, options)[0].completion == alone.completion


def test_seeded_sampling_in_a_mixed_batch_repeats(mixed, questions):
    options = DecodingOptions(max_new_tokens=64, temperature=0.8, top_p=0.95, batch_size=64)
    requests = [GenerationRequest(q, LAMS[i % 4], seed=11 + i)
                for i, q in enumerate(questions[:24])]
    first = mixed.generate(requests, options)
    again = mixed.generate(requests[::-1], options)[::-1]
    assert [r.completion for r in first] == [r.completion for r in again]
    reseeded = mixed.generate([GenerationRequest(r.question, r.lam, seed=r.seed + 1000)
                               for r in requests], options)
    assert [r.completion for r in reseeded] != [r.completion for r in first]


def test_plan_full_batches_hold_one_lambda_and_remainders_mix():
    lams = [0.0] * 5 + [0.5] * 3 + [1.0] * 2
    encoded = [[1]] * len(lams)
    assert plan_batches(lams, 0.0, encoded, 4, mixes=True) == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert plan_batches(lams, 0.0, encoded, 4, mixes=False) == [
        [0, 1, 2, 3], [4], [5, 6, 7], [8, 9]]


def test_the_tied_output_layer_mixes_with_its_embeddings_delta(mixed):
    model = mixed.model
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied: one Parameter
    views = mixed._delta_views()
    assert len(views) == len(list(model.parameters()))  # the tied Parameter appears once


def test_a_module_not_linear_in_its_parameters_is_refused_by_name(tiny_pair):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def models():
        loaded = [AutoModelForCausalLM.from_pretrained(p) for p in tiny_pair]
        for model in loaded:  # a parametrised activation: max(x, a·x) is not linear in a
            model.model.layers[1].mlp.act_fn = torch.nn.PReLU()
        return loaded

    tokenizer = AutoTokenizer.from_pretrained(tiny_pair[0])
    with pytest.raises(DamiPrefError, match=r"model\.layers\.1\.mlp\.act_fn \(PReLU\) is not "
                                            r"known to be"):
        InterpolationRuntime.from_models(*models(), tokenizer, lambda_batching="mixed")
    runtime = InterpolationRuntime.from_models(*models(), tokenizer)  # grouped: any module
    assert not runtime.mixes_lambdas


def test_mixed_needs_delta_not_exact_memory():
    with pytest.raises(DamiPrefError, match="memory_mode delta"):
        InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, lambda_batching="mixed",
                             memory_mode="exact")
    with pytest.raises(DamiPrefError, match="lambda_batching must be one of"):
        InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, lambda_batching="sometimes")
    grouped = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING)
    with pytest.raises(DamiPrefError, match="one λ per batch"):
        with grouped.mixed_rows([0.0, 1.0]):
            pass
