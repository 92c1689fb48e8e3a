"""The real-pair recipe (scripts/run_qwen3_4b.sh) end to end, pointed at the toy pair.

The script and every Qwen3-4B config run as a GPU node would run them; only the pair, the ranker
backbone, the problem sets, their sizes and the hardware are overridden, through the variables
the script documents. So a config key that no longer parses, a stage that reads another's output
from the wrong place, or a flag that was renamed fails here rather than on a GPU node.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from dami_pref.toy import TOY_BASE, TOY_INSTRUCT, TOY_THINKING, toy_problems_path
from helpers import run_on_free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_qwen3_4b_recipe_runs_on_the_toy_pair(tmp_path):
    # the recipe generates on vLLM (its configs say engine: vllm); here the runtime stands in
    for name in ("rollout", "eval", "eval_math500", "eval_aime"):
        assert yaml.safe_load((ROOT / "configs" / "qwen3_4b" / f"{name}.yaml").read_text())[
            "engine"] == "vllm"
    pair = f"--instruct {TOY_INSTRUCT} --thinking {TOY_THINKING} --dtype float32 --device cpu " \
           "--prompt_template {question} --engine runtime"
    env = {**os.environ, "OUT": str(tmp_path / "out"), "EVAL_SETS": "gsm8k",
           "ROLLOUT_ARGS": f"{pair} --problems {toy_problems_path('train')} --preset default "
                           "--limit 24 --samples 2 --max_new_tokens 80 --batch_size 48 "
                           "--shard_size 12",
           "PAIRS_ARGS": "--validation_fraction 0.25 --prompt_tokenizer toy",
           "TRAIN_ARGS": f"--model_name_or_path {TOY_BASE} --dtype float32 --use_cpu true "
                         "--bf16 false --max_length 64 --per_device_train_batch_size 4 "
                         "--gradient_accumulation_steps 1 --max_steps 2 --eval_steps 1 "
                         "--report_to none --disable_tqdm true",
           "EVAL_ARGS": f"{pair} --test_problems {toy_problems_path('test')} "
                        f"--validation_problems {toy_problems_path('validation')} "
                        "--preset default --limit 12 --validation_limit 12 --live_limit 4 "
                        "--max_new_tokens 80 --batch_size 48 --conf_think_skip <think></think> "
                        "--no-progress"}
    proc = run_on_free_port(lambda port: subprocess.run(  # the script resumes where it stopped
        ["bash", str(ROOT / "scripts" / "run_qwen3_4b.sh")], cwd=ROOT, capture_output=True,
        text=True, timeout=900, env={**env, "ACCELERATE_ARGS":
                                     f"--cpu --num_processes 1 --main_process_port {port}"}))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = tmp_path / "out"
    manifest = json.loads((out / "rollouts_gsm8k" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["samples"] == 4 // 2 and manifest["n_problems"] == 24
    assert manifest["grid"] == [round(0.1 * i, 10) for i in range(11)]  # the config's grid
    for suffix, objective in (("", "acc"), ("_pref", "pref"), ("_pred", "pred"),
                              ("_route", "route")):
        config = json.loads((out / f"ranker{suffix}" / "dami_pref.json").read_text())
        assert config["objective"] == objective and config["lora"]["r"] == 16  # train.yaml
    results = json.loads((out / "eval_gsm8k" / "results.json").read_text())
    methods = {m["method"] for m in results["methods"]}
    assert {"dami_pref", "dami_pref_paper", "dami_pred", "dami_routing", "dami_conf",
            "oracle"} <= methods
    assert results["config"]["cost_weights"] == "auto"  # eval.yaml's own value
    assert "results:" in proc.stdout
