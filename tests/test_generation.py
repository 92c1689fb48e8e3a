"""Batched generation through the runtime, on the bundled toy pair and tiny random pairs."""

from __future__ import annotations

import pytest

from dami_pref.errors import DamiPrefError
from dami_pref.runtime.generation import DecodingOptions, GenerationRequest
from dami_pref.data.grading import answers_match
from dami_pref.runtime import InterpolationRuntime
from dami_pref.toy.task import direct_completion, parse_question, verified_steps, worked_steps
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

QUESTIONS = ["3+4", "12+17+19", "5+8+2+1+9", "17+13+12+19"]


@pytest.fixture(scope="module")
def toy_runtime():
    return InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")  # defaults: the bundled toy pair


def test_toy_formats_at_the_endpoints(toy_runtime):
    requests = [GenerationRequest(q, lam) for lam in (0.0, 1.0) for q in QUESTIONS]
    results = toy_runtime.generate(requests, DecodingOptions(max_new_tokens=160, batch_size=3))
    verified = 0
    for request, result in zip(requests, results):
        operands = parse_question(request.question)
        assert result.finished and result.lam == request.lam
        if request.lam == 0.0:  # Instruct: the answer at once, no thinking span
            assert "<think>" not in result.completion and result.think_tokens == 0
            assert result.n_tokens == len(result.completion) + 1  # characters + end token
        else:  # Thinking: the checked running sums, mostly verified once more, then the sum
            trace = result.completion[len("<think>"):result.completion.index("</think>")]
            assert trace in (worked_steps(operands), verified_steps(operands))
            assert result.completion == f"<think>{trace}</think>{sum(operands)}"
            assert result.think_tokens == len(trace) + 2
            verified += trace == verified_steps(operands)
            assert result.answer == direct_completion(operands)
            assert answers_match(result.answer, str(sum(operands)))
    assert verified >= 2  # the Thinking model's habit (it verifies most of the time)


def test_greedy_results_do_not_depend_on_batching(toy_runtime):
    requests = [GenerationRequest(q, lam) for q in QUESTIONS for lam in (0.0, 0.5, 1.0)]
    one = toy_runtime.generate(requests, DecodingOptions(max_new_tokens=100, batch_size=1))
    many = toy_runtime.generate(requests, DecodingOptions(max_new_tokens=100, batch_size=16))
    assert [r.completion for r in one] == [r.completion for r in many]
    assert [r.lam for r in many] == [r.lam for r in requests]  # back in request order


def test_one_switch_per_distinct_lambda(toy_runtime):
    toy_runtime.set_lambda(0.0)
    before = toy_runtime.switches
    lams = [0.5, 0.0, 1.0, 0.5, 0.0, 1.0, 0.5]
    toy_runtime.generate([GenerationRequest("1+2", lam) for lam in lams],
                         DecodingOptions(max_new_tokens=20, batch_size=2))
    assert toy_runtime.switches - before == 2  # 0.0 is already loaded; then 0.5 and 1.0


def test_seeded_sampling_is_per_request(toy_runtime):
    options = DecodingOptions(max_new_tokens=60, temperature=1.5, batch_size=4)
    base = [GenerationRequest(q, 0.5, seed=7) for q in QUESTIONS]
    a = toy_runtime.generate(base, options)
    # The same requests, shuffled among others and batched differently, draw the same tokens.
    mixed = [GenerationRequest("9+9", 0.5, seed=1)] + base[::-1]
    b = toy_runtime.generate(mixed, DecodingOptions(max_new_tokens=60, temperature=1.5,
                                                    batch_size=2))
    assert [r.completion for r in a] == [r.completion for r in b[1:][::-1]]
    reseeded = toy_runtime.generate([GenerationRequest(q, 0.5, seed=s) for s in (8, 9, 10)
                                     for q in QUESTIONS], options)
    assert len({r.completion for r in reseeded}) > len(QUESTIONS)  # other seeds, other samples
    again = toy_runtime.generate([GenerationRequest(q, 0.5, seed=8) for q in QUESTIONS], options)
    assert [r.completion for r in again] == [r.completion for r in reseeded[:len(QUESTIONS)]]


def test_token_limit_marks_unfinished(toy_runtime):
    [result] = toy_runtime.generate([GenerationRequest(QUESTIONS[-1], 1.0)],
                                    DecodingOptions(max_new_tokens=5))
    assert not result.finished and result.n_tokens == 5 and result.answer == ""
    assert result.think_tokens == 5  # all inside the still-open span


@pytest.mark.parametrize("kwargs", [dict(max_new_tokens=0), dict(batch_size=0),
                                    dict(temperature=-1.0), dict(top_p=0.0)])
def test_bad_decoding_options(kwargs):
    with pytest.raises(DamiPrefError):
        DecodingOptions(**kwargs)


def test_prompt_template_and_chat_template(toy_runtime, tiny_pair):
    assert toy_runtime.render_prompt("1+2") == "<|user|>1+2<|end|><|assistant|>"
    runtime = InterpolationRuntime(*tiny_pair, device="cpu", prompt_template="Q: {question}")
    assert runtime.render_prompt("1+2") == "<|user|>Q: 1+2<|end|><|assistant|>"
    with pytest.raises(DamiPrefError, match="question"):
        InterpolationRuntime(*tiny_pair, device="cpu", prompt_template="no placeholder")


def test_a_prompt_longer_than_the_context_is_named_before_generating(toy_runtime):
    from dami_pref.errors import DamiPrefError

    long_question = "+".join(["1"] * 200)  # 399 characters: with 128 new tokens > 512 positions
    with pytest.raises(DamiPrefError, match=r"'1\+1\+1.*…' is \d+ prompt tokens; with "
                                            r"max_new_tokens 128 that exceeds the model's "
                                            r"context of 512 positions"):
        toy_runtime.generate([GenerationRequest("1+2", 0.0), GenerationRequest(long_question, 0.0)],
                             DecodingOptions(max_new_tokens=128))
    [fits] = toy_runtime.generate([GenerationRequest(long_question, 0.0)],
                                  DecodingOptions(max_new_tokens=8))  # a smaller budget fits
    assert fits.n_tokens >= 1


def test_questions_the_tokenizer_cannot_read_are_warned_about(toy_runtime):
    with pytest.warns(UserWarning, match=r"1 question\(s\) are mostly tokens the tokenizer "
                                         r"does not know \(first: '二加三等于几'\)"):
        toy_runtime.generate([GenerationRequest("二加三等于几", 0.0), GenerationRequest("2+3", 0.0)],
                             DecodingOptions(max_new_tokens=4))


def test_a_progress_log_has_one_line_per_update(capsys):
    """In a log (not a terminal) each batch's progress appears once, not once for the count
    and again for its postfix."""
    import re

    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    runtime = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")
    requests = [GenerationRequest(q, lam) for q in ("3+4", "12+7", "5+5+5") for lam in (0, 1)]
    capsys.readouterr()
    runtime.generate(requests, DecodingOptions(max_new_tokens=40, batch_size=1), progress=True)
    counts = [int(m.group(1)) for m in re.finditer(r"\| (\d+)/6 ", capsys.readouterr().err)]
    assert counts and counts[-1] == 6
    body = counts[:-1] if counts.count(6) > 1 else counts  # close() may redraw the last state
    assert len(body) == len(set(body)), counts
