"""Promises the repository makes to a new user: README's commands, CI, benchmarks that run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    main_cmd, test_cmd = readme_commands()
    assert "./scripts/run_toy.sh" in main_cmd and "pytest" in test_cmd
    script = ROOT / "scripts" / "run_toy.sh"
    assert script.is_file() and script.stat().st_mode & 0o111  # executable
    assert "pip install torch==2.13.0" in main_cmd and "pip install torch==2.13.0" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.strip() in ci


def test_lambda_switch_benchmark_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lambda_switch.py"),
                           "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| tiny |" in proc.stdout
    import json

    [row] = json.loads(out.read_text())["results"]
    assert row["switch_ms"] > 0 and row["floor_ms"] > 0 and row["naive_ms"] > 0
    assert row["bytes_per_switch"] == 3 * 4 * row["parameters"]


def _script_args(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_script_{name}",
                                                  ROOT / "data_builders" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_every_experiment_config_parses():
    import yaml

    from dami_pref.arguments import parse_args
    from dami_pref.evaluation.harness import EvalArgs
    from dami_pref.ranker.training import TrainArgs

    kinds = {"toy.yaml": TrainArgs, "qwen3_4b.yaml": TrainArgs,
             "eval_toy.yaml": EvalArgs, "eval_qwen3_4b.yaml": EvalArgs,
             "rollout_toy.yaml": _script_args("rollout").RolloutArgs,
             "rollout_qwen3_4b.yaml": _script_args("rollout").RolloutArgs,
             "pairs_toy.yaml": _script_args("pairs").PairsArgs}
    found = {p.name for p in (ROOT / "configs").glob("*.yaml")}
    assert found == set(kinds), "a config without a parser test, or a missing config"
    for name, cls in kinds.items():
        parsed = parse_args(cls, ["--config", str(ROOT / "configs" / name)])
        assert isinstance(parsed, cls)
    for path in (ROOT / "configs" / "accelerate").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        assert data["distributed_type"] in ("MULTI_GPU", "DEEPSPEED"), path.name
