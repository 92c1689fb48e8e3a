"""Every benchmark script runs end to end in its smoke mode and prints the table BENCHMARKS.md holds.

Each script runs as the user would start it (a fresh process), on CPU with tiny shapes or the
toy pair; the figures themselves belong in BENCHMARKS.md, not here, so the assertions check
that each row is whole and its numbers are sane, never how fast anything ran.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run_benchmark(name: str, *args: str, timeout: int = 600) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def table_rows(stdout: str, first_cell: str) -> list[list[str]]:
    """Rows of the markdown tables whose first cell starts with first_cell, split into cells."""
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(first_cell):
            rows.append(cells)
    return rows


def number(cell: str) -> float:
    match = re.search(r"-?[\d,]*\.?\d+(?:e[-+]?\d+)?", cell)
    assert match, f"no number in {cell!r}"
    return float(match.group().replace(",", ""))


@pytest.fixture(scope="module")
def ranker(session_ranker) -> Path:
    return session_ranker


def test_rollout_throughput():
    stdout = run_benchmark("rollout_throughput", "--quick")
    [grouped] = table_rows(stdout, "λ-grouped")
    [single] = table_rows(stdout, "re-merge per question")
    assert number(grouped[1]) == 120 and number(single[1]) == 20  # 40 problems × 3 λ; subset
    assert number(grouped[4]) > 0 and number(single[4]) > 0
    assert "throughput ratio" in stdout


def test_generation_throughput():
    stdout = run_benchmark("generation_throughput", "--quick")
    rows = table_rows(stdout, "")
    modes = [r[0] for r in rows if r[0] not in ("mode", "---")]
    assert sum("grouped" in m for m in modes) == 2 and any("re-merge" in m for m in modes)
    for r in rows:
        if r[0] in modes:
            assert number(r[3]) > 0  # tokens/s


def test_kv_cache_toy_part_compares_every_cache():
    stdout = run_benchmark("kv_cache", "--quick")
    [dynamic] = table_rows(stdout, "dynamic")
    assert dynamic[-2].startswith("0 of 14")  # the reference differs from itself nowhere
    quantized = table_rows(stdout, "quantized-4")
    assert {r[1] for r in quantized} == {"hqq", "quanto"}
    for r in quantized + table_rows(stdout, "quantized-2"):
        assert re.fullmatch(r"\d+ of 14", r[-2]), r
    [offloaded] = table_rows(stdout, "offloaded")
    assert "not run" in offloaded[2] and "CUDA" in offloaded[2]  # CPU here: a clear reason


def test_kv_cache_memory_part():
    stdout = run_benchmark("kv_cache", "--quick", "--part", "memory")
    [dynamic] = table_rows(stdout, "dynamic")
    assert number(dynamic[3]) == 1 and number(dynamic[6]) > 0  # tokens/s
    quantized = table_rows(stdout, "quantized")
    assert len(quantized) == 4
    for r in quantized:  # the cache ends smaller than the full-precision one
        assert number(r[3]) < 1 and number(r[6]) > 0
    [offloaded] = table_rows(stdout, "offloaded")
    assert "needs --device cuda" in offloaded[2]


def test_memory_modes():
    stdout = run_benchmark("memory_modes", "--quick")
    held = {r[1]: number(r[2]) for r in table_rows(stdout, "tiny") if len(r) == 4}
    assert held["delta"] / held["exact"] == pytest.approx(2 / 3, rel=0.01)  # 2 copies, not 3
    errors = [r for r in table_rows(stdout, "tiny") if len(r) > 4]
    exact = [r for r in errors if r[1] == "exact"]
    delta = [r for r in errors if r[1] == "delta"]
    assert exact and delta
    assert all(number(r[3]) < 1e-2 for r in errors)
    assert all(number(r[4]) == 100 for r in exact)  # the exact mode rounds once, by design


def test_ranker_scoring():
    stdout = run_benchmark("ranker_scoring", "--quick")
    [row] = table_rows(stdout, "tiny")
    assert number(row[1]) > 0 and number(row[2]) > 0


def test_deepspeed_step(toy_pairs):
    stdout = run_benchmark("deepspeed_step", "--quick", "--pairs", str(toy_pairs))
    [row] = table_rows(stdout, "2")
    assert number(row[1]) > 0 and number(row[2]) > 0 and row[3] == "DEEPSPEED"


def test_select_latency(ranker):
    stdout = run_benchmark("select_latency", "--ranker", str(ranker), "--questions", "16",
                           "--batch_size", "8", "--single", "4", "--repeats", "1")
    assert number(table_rows(stdout, "start-up")[0][1]) > 0
    assert number(table_rows(stdout, "per question, one at a time")[0][1]) > 0


def test_ranker_vs_trl(toy_pairs):
    stdout = run_benchmark("ranker_vs_trl", "--quick", "--pairs", str(toy_pairs),
                           "--ranker_epochs", "1")
    rows = [r for r in table_rows(stdout, "") if r[0] not in ("trainer", "---")]
    assert len(rows) == 2
    for r in rows:
        assert 0 <= number(r[5]) <= 1  # validation pairwise accuracy


def test_data_efficiency(toy_pairs):
    stdout = run_benchmark("data_efficiency", "--pairs", str(toy_pairs), "--sizes", "12,24",
                           "--steps", "3", "--seeds", "1")
    rows = [r for r in table_rows(stdout, "") if r[0].isdigit()]
    assert {(r[0], r[1]) for r in rows} == {(n, objective) for n in ("12", "24")
                                           for objective in ("acc", "pref", "pred")}
    for r in rows:
        assert 0 <= number(r[2]) <= 1 and len(r) == 9 and 0 <= number(r[7]) <= 100


def test_instruct_predictability(toy_pairs):
    stdout = run_benchmark("instruct_predictability", "--rollouts",
                           str(toy_pairs.parent / "rollouts"), "--folds", "3")
    [k_only] = table_rows(stdout, "k only")
    [hand_made] = table_rows(stdout, "hand-made")
    assert 0 <= number(k_only[1]) <= 1 and 0 <= number(hand_made[1]) <= 1
    assert "k2" in hand_made[2] and "k3" in hand_made[2]


def test_toy_robustness():
    stdout = run_benchmark("toy_robustness", "--per_set", "4", "--grid", "0,1")
    for name in ("one-digit", "two-digit", "mixed", "longest", "uniform"):
        [row] = table_rows(stdout, name)
        assert len(row) == 3 and all(0 <= number(cell) <= 100 for cell in row[1:])


def test_serve_load(ranker):
    stdout = run_benchmark("serve_load", "--quick", "--ranker", str(ranker))
    rows = table_rows(stdout, "dami-pref") + table_rows(stdout, "fixed")
    assert len(rows) == 2 and all(number(r[1]) > 0 and number(r[3]) >= number(r[2])
                                  for r in rows)


@pytest.mark.vllm
def test_engine_throughput():
    stdout = run_benchmark("engine_throughput", "--quick")
    rows = {r[0]: r for r in table_rows(stdout, "") if r[0] not in ("engine", "---")}
    assert set(rows) == {"runtime generate", "runtime mixed", "runtime generate_batch", "vllm",
                         "vllm mixed"}
    for row in rows.values():
        assert number(row[1]) > 0 and number(row[2]) > 0 and number(row[3]) > 0
    assert number(rows["runtime generate"][4]) == 1.0
    assert "vLLM switch:" in stdout and "prefix cache: reset" in stdout


def test_mixed_step_runtime():
    stdout = run_benchmark("mixed_step", "--quick", "--engines", "runtime")
    rows = {r[0]: r for r in table_rows(stdout, "runtime")}
    assert set(rows) == {"runtime, one λ (plain)", "runtime, mixed λ"}
    assert number(rows["runtime, one λ (plain)"][3]) == 1.0
    assert all(number(r[1]) > 0 for r in rows.values())


@pytest.mark.vllm
def test_mixed_step_vllm():
    stdout = run_benchmark("mixed_step", "--quick", "--engines", "vllm")
    rows = table_rows(stdout, "vllm")
    assert len(rows) == 3 and all(number(r[1]) > 0 for r in rows)
