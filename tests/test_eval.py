"""The evaluation harness on a tiny configuration of the toy pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dami_pref.errors import DamiPrefError
from dami_pref.cli.eval import EvalArgs, evaluate
from dami_pref.evaluation.report import validate_results
from helpers import quick_args, reset_accelerate_state

GRID = "0,0.25,0.5,0.75,1"  # the grid of the toy_pairs fixture


@pytest.fixture(scope="module")
def rankers(toy_pairs, tmp_path_factory) -> dict[str, str]:
    from dami_pref.ranker.training import train

    root = tmp_path_factory.mktemp("rankers")
    out = {}
    for method, objective in (("dami_pref", "acc"), ("dami_pref_paper", "pref"),
                              ("dami_pred", "pred"), ("dami_routing", "route")):
        reset_accelerate_state()
        train(*quick_args(toy_pairs, root / objective, objective=objective, max_steps=10,
                          eval_steps=100))
        out[method] = str(root / objective)
    reset_accelerate_state()
    return out


def tiny(out: Path, rankers: dict, **changes) -> EvalArgs:
    values = dict(output=str(out), grid=GRID, limit=14, validation_limit=14, device="cpu",
                  max_new_tokens=80, batch_size=32, progress=False,
                  dami_pref_ranker=rankers["dami_pref"],
                  dami_pref_paper_ranker=rankers["dami_pref_paper"],
                  dami_pred_ranker=rankers["dami_pred"],
                  dami_routing_ranker=rankers["dami_routing"], cost_weights="0,1,100")
    values.update(changes)
    return EvalArgs(**values)


@pytest.fixture(scope="module")
def results(rankers, tmp_path_factory) -> dict:
    return evaluate(tiny(tmp_path_factory.mktemp("eval") / "eval", rankers))


def test_every_method_in_the_table(results):
    methods = {r["method"] for r in results["methods"]}
    assert methods == {"static_0", "static_0.25", "static_0.5", "static_0.75", "static_1",
                       "instruct", "thinking", "best_static", "dami_pref", "dami_pref_paper",
                       "dami_pred", "dami_routing", "dami_conf", "oracle"}
    for label in ("Instruct (λ=0)", "Thinking (λ=1)", "best static λ", "DAMI-Pref",
                  "DAMI-Pref as published", "DAMI-Pred",
                  "DAMI-Routing", "DAMI-Conf", "oracle λ*(q)"):
        assert label in results["table"]
    assert "speed-up" in results["table"].splitlines()[0]


def test_oracle_bounds_every_method(results):
    by = {r["method"]: r for r in results["methods"]}
    oracle = by["oracle"]
    for r in results["methods"]:
        assert oracle["accuracy"] >= r["accuracy"] - 1e-12, r["method"]
        if oracle["accuracy"] == r["accuracy"]:
            assert oracle["mean_tokens"] <= r["mean_tokens"] + 1e-9, r["method"]


def test_live_agrees_with_offline_and_is_timed(results):
    live = [r for r in results["methods"] if "live" in r]
    assert {r["method"] for r in live} >= {"thinking", "dami_pref", "dami_conf", "oracle"}
    for r in live:
        assert r["live"]["agrees_with_offline"], r["method"]
        assert r["live"]["accuracy"] == pytest.approx(r["accuracy"])
        assert r["live"]["seconds"] > 0 and r["live"]["speedup_vs_thinking"] > 0
        # live generation spends the very tokens the offline table counted
        assert r["live"]["mean_tokens"] == pytest.approx(r["mean_tokens"]), r["method"]


def test_results_json_validates_and_files_exist(results):
    out = Path(results["config"]["output"])
    saved = json.loads((out / "results.json").read_text())
    validate_results(saved)
    assert saved["environment"]["packages"]["torch"] and "git_commit" in saved["environment"]
    assert saved["seeds"]["rollouts"] == 0
    names = {"dami_pref", "dami_pref_paper", "dami_pred", "dami_routing"}
    assert saved["seeds"]["rankers"] == {name: 0 for name in names}
    assert set(saved["rankers"]) == names
    for plot in ("pareto", "lambda_by_difficulty", "cost_knob"):
        assert Path(saved["plots"][plot]).read_bytes()[:4] == b"\x89PNG"
    assert (out / "results.md").read_text().startswith("| method |")
    for knob in (saved["cost_knob"], saved["cost_knob_paper"]):
        assert {0.0, 1.0, 100.0} <= {k["beta"] for k in knob}
        assert [k["beta"] for k in knob] == sorted(k["beta"] for k in knob)
        assert knob[-1]["mean_tokens"] <= knob[0]["mean_tokens"]
        assert sum(k["chosen"] for k in knob) == 1
    for method in ("dami_pref", "dami_pref_paper"):
        rows = saved["frontier_vs_static"][method]
        assert [r["lambda"] for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
        for r in rows:
            if r["beta"] is not None:
                assert r["mean_tokens"] <= r["static_mean_tokens"] + 1e-9
                low, high = r["difference_ci95"]
                assert low <= r["difference"] <= high and r["at_or_above"] == (high >= 0)
    assert 0.0 <= saved["routing_roc_auc"] <= 1.0  # 'Instruct is wrong' has two classes here
    [chosen] = [k for k in saved["cost_knob"] if k["chosen"]]
    pref = next(m for m in saved["methods"] if m["method"] == "dami_pref")
    assert chosen["accuracy"] == pytest.approx(pref["accuracy"])  # the row uses that β
    assert [k for k in saved["cost_knob_paper"] if k["chosen"]][0]["beta"] == 0.0
    if "roc_auc" in saved["dami_conf"]:  # only when the test set has both kinds of λ*
        assert 0.0 <= saved["dami_conf"]["roc_auc"] <= 1.0
    assert {"a", "b"} <= set(saved["dami_conf"]["calibration"])
    broken = dict(saved)
    broken["methods"] = [{**saved["methods"][0], "accuracy": 1.5}]
    with pytest.raises(ValueError, match="outside"):
        validate_results(broken)
    with pytest.raises(ValueError, match="missing 'methods'"):
        validate_results({k: v for k, v in saved.items() if k != "methods"})


def test_results_json_says_exactly_what_was_run(results):
    """Models, data, rankers, environment, grading, command and times; intervals everywhere."""
    import hashlib

    from dami_pref.data.rollouts import problems_fingerprint, problems_sha256
    from dami_pref.data.problems import load_problems
    from dami_pref.runtime.checkpoints import checkpoint_fingerprint
    from dami_pref.toy import TOY_INSTRUCT, toy_problems_path

    saved = json.loads((Path(results["config"]["output"]) / "results.json").read_text())
    instruct = saved["models"]["instruct"]
    assert instruct["name"] == instruct["path"] == "dami_pref://toy/instruct"
    assert instruct["weights_fingerprint"] == checkpoint_fingerprint(TOY_INSTRUCT)
    test = saved["data"]["test"]
    assert test["source"] == "dami_pref://toy/problems/test.jsonl" and test["problems"] == 14
    read = load_problems(toy_problems_path("test"), limit=14)
    assert test["sha256"] == problems_sha256(read) and len(test["sha256"]) == 64
    assert test["fingerprint"] == problems_fingerprint(read)
    template = (TOY_INSTRUCT / "chat_template.jinja").read_text()
    assert saved["models"]["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()
    for name, ranker in saved["rankers"].items():
        assert len(ranker["fingerprint"]) == 16 and ranker["objective"] in ("pref", "acc",
                                                                           "pred", "route")
    env = saved["environment"]
    assert env["python"] and env["os"] and env["torch_threads"] >= 1 and "gpus" in env
    assert saved["grading"]["library"] == "math-verify" and saved["grading"]["version"]
    assert saved["grading"]["thinking_tags"] == ["<think>", "</think>"]
    assert saved["run"]["command"] and saved["run"]["started"] <= saved["run"]["finished"]
    for m in saved["methods"]:
        lo, hi = m["accuracy_ci95"]
        assert lo <= m["accuracy"] <= hi and 0.0 <= lo and hi <= 1.0
        lo, hi = m["mean_tokens_ci95"]
        assert lo <= m["mean_tokens"] <= hi
        if "live" in m:
            assert len(m["live"]["accuracy_ci95"]) == 2
    assert "–" in (Path(results["config"]["output"]) / "results.md").read_text()  # intervals


def test_rollouts_are_reused(results, rankers):
    out = Path(results["config"]["output"])
    with pytest.raises(DamiPrefError, match="already holds results.json; pass --overwrite"):
        evaluate(tiny(out, rankers, methods="thinking,oracle", modes="offline"))
    units = {p: p.stat().st_mtime_ns for p in out.rglob("units/**/*.parquet")}
    again = evaluate(tiny(out, rankers, methods="thinking,oracle", modes="offline",
                          overwrite=True))
    assert units and {p: p.stat().st_mtime_ns for p in out.rglob("units/**/*.parquet")} == units
    assert {r["method"] for r in again["methods"]} == {"thinking", "oracle"}


def test_ranker_on_another_grid(rankers, tmp_path):
    with pytest.raises(DamiPrefError, match="trained on the grid"):
        evaluate(tiny(tmp_path / "e", rankers, grid="0,0.5,1", methods="dami_pref",
                            modes="offline"))
    assert not (tmp_path / "e").exists()  # refused before any rollout
    with pytest.raises(DamiPrefError, match="trained with objective 'pred'"):
        evaluate(tiny(tmp_path / "e", rankers, methods="dami_pref",
                            dami_pref_ranker=rankers["dami_pred"]))
    assert not (tmp_path / "e").exists()


def test_live_mode_chooses_inside_the_timed_run(results):
    by = {r["method"]: r for r in results["methods"]}
    for method in ("dami_pref", "dami_pred", "dami_routing", "dami_conf"):
        live = by[method]["live"]
        assert live["choose_seconds"] > 0, method
        assert live["same_choices_as_offline"], method
        # requests are grouped by λ: at most one switch per distinct λ chosen
        assert live["switches"] <= len(by[method]["lambda_counts"]), method
    assert by["oracle"]["live"]["choose_seconds"] == 0.0


def test_harness_on_a_gsm8k_style_file(rankers, tmp_path):
    """Any problems source: a jsonl in GSM8K form, renamed columns, no difficulty field."""
    from dami_pref.data.problems import load_problems
    from dami_pref.utils.io import write_jsonl
    from dami_pref.toy import toy_problems_path

    rows = [{"qid": f"g{i}", "text": p.question, "solution": f"Adding up.\n#### {p.answer}"}
            for i, p in enumerate(load_problems(toy_problems_path("test"), limit=10))]
    write_jsonl(rows, tmp_path / "gsm.jsonl")
    got = evaluate(tiny(tmp_path / "e", rankers, test_problems=str(tmp_path / "gsm.jsonl"),
                              validation_problems=str(tmp_path / "gsm.jsonl"), preset="gsm8k",
                              question_field="text", answer_field="solution", id_field="qid",
                              methods="thinking,dami_pref,oracle", modes="offline"))
    by = {r["method"]: r for r in got["methods"]}
    assert got["test"]["problems"] == 10
    # graded against "#### n" (a misread gold would make every answer wrong)
    assert by["oracle"]["accuracy"] >= 0.7 and by["thinking"]["accuracy"] > 0
    assert by["oracle"]["accuracy"] >= by["dami_pref"]["accuracy"]


def test_test_rollouts_missing_lambda_values(results, rankers, tmp_path):
    out = Path(results["config"]["output"])
    with pytest.raises(DamiPrefError, match=r"no rollouts for λ \[0.1"):
        evaluate(tiny(tmp_path / "e", rankers, grid="0,0.1,1", methods="thinking",
                            modes="offline", test_rollouts=str(out / "rollouts_test")))


def test_rollouts_of_other_settings_are_refused(results, rankers, tmp_path):
    """Rollouts made with another token limit (or another pair) describe another model."""
    out = Path(results["config"]["output"])
    with pytest.raises(DamiPrefError, match="max_new_tokens: 80 there, 40 here"):
        evaluate(tiny(tmp_path / "e", rankers, methods="thinking", modes="offline",
                      max_new_tokens=40, test_rollouts=str(out / "rollouts_test")))
    with pytest.raises(DamiPrefError, match="pair: .* there"):
        evaluate(tiny(tmp_path / "e", rankers, methods="thinking", modes="offline",
                      prompt_template="Q: {question}", test_rollouts=str(out / "rollouts_test")))
    assert not (tmp_path / "e" / "results.json").exists()


def test_unknown_method_and_missing_ranker(rankers, tmp_path):
    with pytest.raises(DamiPrefError, match="unknown method"):
        evaluate(tiny(tmp_path / "e", rankers, methods="thinking,dami_magic"))
    with pytest.raises(DamiPrefError, match="needs dami_pred_ranker"):
        evaluate(tiny(tmp_path / "e", rankers, methods="dami_pred",
                            dami_pred_ranker=None))
    assert not (tmp_path / "e").exists()
