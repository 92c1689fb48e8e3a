"""Grading final answers with math-verify: formats, thinking spans, and never raising."""

from __future__ import annotations

import pytest

from dami_pref.data.grading import (answers_match, final_answer, gold_answer, grade, is_parsable,
                               last_boxed, split_thinking)


@pytest.mark.parametrize("completion, gold, expected", [
    ("70", "70", True),
    ("71", "70", False),
    ("<think>47+8=55;55+15=70</think>70", "70", True),
    ("<think>47+8=55;55+15=70</think>69", "70", False),
    ("<think>47+8=55;55+15=70", "70", False),  # span never closed: no answer
    ("thinking already open</think>42", "42", True),  # template opened the span
    ("So the answer is \\boxed{\\frac{1}{2}}.", "\\boxed{0.5}", True),
    ("The total is \\boxed{1234}", "She pays 1,000 + 234 = 1234.\n#### 1,234", True),
    ("", "70", False),
    ("no digits here", "70", False),
    ("70.0", "70", True),
    ("\\boxed{", "70", False),  # unbalanced braces are wrong, not an error
    ("}}}{{{\\frac", "\\frac{1}{2}", False),
])
def test_grade(completion, gold, expected):
    assert grade(completion, gold) is expected


def test_gold_formats():
    assert gold_answer("Natalia sold 48/2 = 24 clips...\n#### 72") == "72"
    assert gold_answer("so $x = \\boxed{\\frac{3}{4}}$ and done") == "\\frac{3}{4}"
    assert gold_answer("  42 ") == "42"


def test_split_thinking_cases():
    s = split_thinking("<think>a</think> 5 ")
    assert (s.thinking, s.answer_text, s.span_closed) == ("a", "5", True)
    s = split_thinking("<think>still going")
    assert (s.thinking, s.answer_text, s.span_closed) == ("still going", "", False)
    s = split_thinking("12")
    assert (s.thinking, s.answer_text, s.span_closed) == (None, "12", True)


def test_boxed_nesting_and_final_answer():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("nothing") is None
    assert final_answer("we get \\boxed{7}.") == "7"
    assert final_answer(" 7 ") == "7"


@pytest.mark.parametrize("weird", ["\x00\x01", "$$$$", "\\frac{" * 50, "1/0", "∞" * 10])
def test_garbage_never_raises(weird):
    assert answers_match(weird, "70") is False
    is_parsable(weird)  # must not raise


def _cases():
    import json
    from pathlib import Path

    path = Path(__file__).parent / "data" / "grading_cases.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["note"])
def test_hand_graded_case(case):
    assert grade(case["completion"], case["gold"], case["finished"]) is case["expected"]


def test_grading_is_never_worse_than_math_verify_alone():
    """On every case math-verify alone (its own parse and verify of the raw texts) gets right,
    the toolkit is right too, and the table is large enough to mean something."""
    from math_verify import parse, verify

    cases = _cases()
    assert len(cases) >= 50

    def alone(case) -> bool:
        try:
            return bool(verify(parse(case["gold"]), parse(case["completion"])))
        except Exception:  # noqa: BLE001
            return False

    ours = [grade(c["completion"], c["gold"], c["finished"]) is c["expected"] for c in cases]
    theirs = [alone(c) is c["expected"] for c in cases]
    assert all(o for o, t in zip(ours, theirs) if t)
    assert sum(ours) >= sum(theirs) and sum(ours) == len(cases)
