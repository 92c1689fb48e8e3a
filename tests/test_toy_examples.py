"""Every toy question a user can copy from README or docs is answered right by the bundled pair,
at λ=1 and at the best static λ, so a newcomer's first run shows the method working."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```(python|bash|sh|shell|console)\n(.*?)```", re.S)
QUOTED_SUM = re.compile(r"[\"'](\d+(?:\+\d+)+)[\"']")
# Questions the one-tier pair got wrong at every λ (issue "The toy pair answers the sums a user
# types"): kept so that they stay right even if no example quotes them.
REGRESSIONS = ("23+6", "12+17+19", "12+7+19")


def example_questions() -> list[str]:
    """Quoted sums in the Python and shell blocks of README.md and docs/**/*.md."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = {q for page in pages for _, block in FENCE.findall(page.read_text())
             for q in QUOTED_SUM.findall(block)}
    return sorted(found)


def test_the_readme_quotes_toy_questions():
    """The collector sees the README's examples (so an empty list cannot pass the test below)."""
    assert {"12+7+19", "3+4"} <= set(example_questions())


@pytest.mark.parametrize("lam_name", ["thinking", "best_static"])
def test_examples_are_answered_correctly(lam_name):
    from dami_pref.data.grading import grade
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest
    from dami_pref.toy import TOY_BEST_STATIC_LAMBDA, TOY_BUDGET
    from dami_pref.toy.task import parse_question

    lam = 1.0 if lam_name == "thinking" else TOY_BEST_STATIC_LAMBDA
    questions = sorted(set(example_questions()) | set(REGRESSIONS))
    results = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu").generate(
        [GenerationRequest(q, lam) for q in questions],
        DecodingOptions(max_new_tokens=TOY_BUDGET, batch_size=len(questions)))
    wrong = {q: r.completion for q, r in zip(questions, results)
             if not grade(r.completion, str(sum(parse_question(q))), r.finished)}
    assert not wrong, f"λ={lam:g} answers wrongly: {wrong}"
