"""Loading problem sets: formats, field mapping, presets, and errors that say where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dami_pref.errors import ProblemsError
from dami_pref.data.problems import field_map, load_problems
from dami_pref.utils.io import write_jsonl
from dami_pref.toy import toy_problems_path
from dami_pref.toy.task import (MAX_OPERANDS, MIN_OPERANDS, allocate_test_cells,
                                generate_splits, k_weights, large_share, parse_question,
                                worked_steps)

ROWS = [{"id": "a", "question": "1+2", "answer": "3", "difficulty": 2},
        {"id": "b", "question": "4+5+6", "answer": "15", "difficulty": 3}]


def test_jsonl_json_parquet_and_disk_agree(tmp_path):
    import datasets

    write_jsonl(ROWS, tmp_path / "p.jsonl")
    (tmp_path / "p.json").write_text(json.dumps(ROWS))
    datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "p.parquet"))
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "disk"))
    datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)}).save_to_disk(
        str(tmp_path / "dict"))
    loaded = [load_problems(tmp_path / name) for name in ("p.jsonl", "p.json", "p.parquet",
                                                          "disk")]
    loaded.append(load_problems(tmp_path / "dict", split="test"))
    assert all(x == loaded[0] for x in loaded)
    assert [p.id for p in loaded[0]] == ["a", "b"] and loaded[0][1].difficulty == 3
    with pytest.raises(ProblemsError, match="choose one with --split"):
        load_problems(tmp_path / "dict")


def test_presets_map_gsm8k_and_math_columns(tmp_path):
    gsm = [{"question": "Tom has 3 apples...", "answer": "3 + 4 = 7\n#### 7"}]
    math = [{"problem": "Compute $1/2+1/4$.", "solution": "It is $\\boxed{\\frac34}$.",
             "level": "Level 2"}]
    write_jsonl(gsm, tmp_path / "gsm.jsonl")
    write_jsonl(math, tmp_path / "math.jsonl")
    g = load_problems(tmp_path / "gsm.jsonl", fields=field_map("gsm8k"))
    m = load_problems(tmp_path / "math.jsonl", fields=field_map("math"))
    assert g[0].id == "000000" and g[0].answer.endswith("#### 7")
    assert m[0].question.startswith("Compute") and m[0].difficulty == "Level 2"
    renamed = load_problems(tmp_path / "math.jsonl",
                            fields=field_map("gsm8k", question="problem", answer="solution"))
    assert renamed[0].answer == m[0].answer


def test_limit_and_seeded_subsample():
    path = toy_problems_path("test")
    first = load_problems(path, limit=5)
    a = load_problems(path, limit=5, seed=3)
    b = load_problems(path, limit=5, seed=3)
    assert len(first) == 5 and a == b and a != first


@pytest.mark.parametrize("content, message", [
    ("", "no problems"),
    ('{"id": "a", "question": "1+1", "answer": "2"}\n{"id": "b", "question": \n',
     "line 2: not valid JSON"),
    ('[1, 2]\n', "line 1: expected a JSON object"),
    ('{"id": "a", "answer": "2"}\n', "row 1: missing field 'question'"),
    ('{"id": "a", "question": "1+1"}\n', "row 1: missing field 'answer'"),
    ('{"question": "1+1", "answer": "2"}\n', "row 1: missing field 'id'"),
    ('{"id": "a", "question": "1+1", "answer": "2"}\n'
     '{"id": "a", "question": "1+2", "answer": "3"}\n', "duplicate id 'a'"),
])
def test_bad_problem_files(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ProblemsError, match=message):
        load_problems(path)


def test_missing_and_unsupported_sources(tmp_path):
    with pytest.raises(ProblemsError, match="not found"):
        load_problems(tmp_path / "nope.jsonl")
    (tmp_path / "p.csv").write_text("id,question\n")
    with pytest.raises(ProblemsError, match="unsupported"):
        load_problems(tmp_path / "p.csv")
    with pytest.raises(ProblemsError, match="unknown problems preset"):
        field_map("nope")
    with pytest.raises(ProblemsError, match="name its split with --split"):  # before any download
        load_problems("someone/math-problems")


def test_toy_generator_is_seeded_disjoint_and_stratified():
    a = generate_splits(seed=5, n_train=300, n_validation=50, n_test=450)
    b = generate_splits(seed=5, n_train=300, n_validation=50, n_test=450)
    assert a == b
    questions = [set(r["question"] for r in rows) for rows in a.values()]
    assert sum(len(q) for q in questions) == len(set().union(*questions))
    allocation = allocate_test_cells(450)
    assert sum(allocation.values()) == 450 and min(allocation.values()) >= 1
    per_k = {}
    for row in a["test"]:
        ops = parse_question(row["question"])
        per_k[len(ops)] = per_k.get(len(ops), 0) + 1
        assert all(0 <= x <= 29 for x in ops)
        assert row["difficulty"] == sum(len(str(x)) for x in ops)
        assert sum(ops) == int(row["answer"])
    assert per_k == {k: sum(n for (kk, _), n in allocation.items() if kk == k)
                     for k in range(MIN_OPERANDS, MAX_OPERANDS + 1)}
    shares = [large_share(parse_question(r["question"])) for r in a["train"]]
    # pure one-digit, pure two-digit and mixed questions are all drawn
    assert min(shares) == 0 and max(shares) == 1 and sum(0 < x < 1 for x in shares) > 50
    weights = k_weights()
    assert abs(sum(weights) - 1) < 1e-12 and weights == sorted(weights, reverse=True)
    # a step whose units carry is checked by subtracting back; others are not
    assert worked_steps([47, 8, 15]) == "47+8=55,55-8=47;55+15=70,70-15=55"
    assert worked_steps([12, 7, 3]) == "12+7=19;19+3=22,22-3=19"


def test_toy_held_out_draw_is_new_and_seeded(tmp_path, capsys):
    import importlib.util
    import sys

    from dami_pref.toy import toy_problems_path

    script = Path(__file__).resolve().parents[1] / "data_builders" / "toy_held_out.py"
    spec = importlib.util.spec_from_file_location("toy_held_out", script)
    held_out = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = held_out  # its dataclass looks itself up while it is defined
    spec.loader.exec_module(held_out)
    out = tmp_path / "held.jsonl"
    assert held_out.main(["--seed", "3", "--n", "200", "--output", str(out)]) == 0
    rows = load_problems(out)
    committed = {p.question for split in ("train", "validation", "test")
                 for p in load_problems(toy_problems_path(split))}
    assert len(rows) == 200 and not committed & {p.question for p in rows}
    assert all(sum(parse_question(p.question)) == int(p.answer) for p in rows)
    capsys.readouterr()
    assert held_out.main(["--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err
