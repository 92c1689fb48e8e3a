"""``dami-pref serve`` under load: the ranker choosing λ, every request at λ = 1, and (on the vLLM
engine) vLLM's own OpenAI server over the best static λ's merged folder, in one run.

    python benchmarks/serve_load.py --ranker outputs/toy/ranker                  # runtime
    python benchmarks/serve_load.py --ranker outputs/toy/ranker --engine vllm    # vLLM engine
    python benchmarks/serve_load.py --ranker outputs/qwen3_4b/ranker --device cuda --engine vllm \\
        --instruct Qwen/Qwen3-4B-Instruct-2507 --thinking Qwen/Qwen3-4B-Thinking-2507 \\
        --max_new_tokens 4096 --requests 500 --concurrency 64
    python benchmarks/serve_load.py --ranker outputs/toy/ranker --quick          # CI smoke

One server per row is started on loopback and given the same requests (the toy test questions, or
--questions FILE), sent from --concurrency threads with the official openai client as chat
completions (greedy, --max_new_tokens). Rows: ``dami-pref`` (the ranker chooses λ),
``dami-pref@1`` (every request at λ = 1), and with ``--engine vllm`` vLLM's own server
(``python -m vllm.entrypoints.openai.api_server``) over ``dami-pref merge --lambda λ`` at the best
static λ chosen on validation (read from --eval_results), with and without its reasoning parser.
Reported: throughput, p50 / p95 latency, mean tokens, accuracy against the gold answers, and λ
switches per second (from dami-pref's /metrics). Every request must be answered, exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LoadArgs:
    ranker: str = "outputs/toy/ranker"
    instruct: str | None = None
    thinking: str | None = None
    device: str = "cpu"
    questions: str | None = None
    requests: int = 200
    concurrency: int = 16
    max_new_tokens: int = 220
    max_batch: int = 32
    engine: str = "runtime"  # the servers' engine: runtime or vllm
    lambda_batching: str = "auto"  # dami-pref serve's --lambda_batching for the ranker's row
    eval_results: str = "outputs/toy/eval/results.json"  # where the best static λ is recorded
    static_lambda: float | None = None  # the merge's λ, if known (else read from eval_results)
    reasoning_parser: str = "qwen3"  # vLLM's own server, second row
    out: str | None = None  # also write the rows as JSON
    quick: bool = False


@dataclass(frozen=True)
class Server:
    label: str
    model: str  # the name requests carry
    argv: list[str]
    extra_body: dict | None = None  # request fields only this server takes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dami_server(args: LoadArgs, label: str, model: str, port: int,
                batching: str) -> Server:
    """``dami-pref serve`` with the options every row shares."""
    pair = [x for name in ("instruct", "thinking") if getattr(args, name)
            for x in (f"--{name}", getattr(args, name))]
    return Server(label, model, [
        sys.executable, "-m", "dami_pref.cli", "serve", "--ranker", args.ranker,
        "--port", str(port), "--device", args.device, "--max_new_tokens", str(args.max_new_tokens),
        "--max_batch", str(args.max_batch), "--max_queue", str(max(256, args.requests)),
        "--engine", args.engine, "--lambda_batching", batching, *pair])


def vllm_server(label: str, folder: Path, port: int, args: LoadArgs,
                parser: str | None) -> Server:
    reasoning = ["--reasoning-parser", parser] if parser else []
    return Server(label, str(folder), [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
        "--dtype", "float32", "--port", str(port), "--max-num-seqs", str(args.max_batch),
        "--disable-log-stats", "--disable-uvicorn-access-log", *reasoning],
        extra_body={"skip_special_tokens": False})  # keep <think> tags for grading


def start(server: Server, base: str) -> subprocess.Popen:
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty engine never blocks on it
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    proc = subprocess.Popen(server.argv, stdout=log, stderr=log, env=env)
    for _ in range(3000):
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"{server.label}: " + log.read().decode()[-3000:])
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{server.label}: the server did not start")


def switches(base: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(base + "/metrics").read().decode()
    except OSError:
        return None
    found = [s.value for f in text_string_to_metric_families(text)
             if f.name == "dami_pref_lambda_switches" for s in f.samples
             if s.name.endswith("_total")]
    return sum(found) if found else None


def correct(choice, gold: str) -> bool:
    """A finished answer that matches the gold one (content after the thinking span)."""
    from dami_pref.data.grading import answers_match, grade

    text = choice.message.content or ""
    if choice.finish_reason != "stop":
        return False
    return grade(text, gold) if "</think>" in text else answers_match(text, gold)


def run_load(args: LoadArgs, server: Server, port: int, problems) -> dict:
    """One server started, loaded with every problem from --concurrency clients, stopped."""
    from openai import OpenAI

    base = f"http://127.0.0.1:{port}"
    proc = start(server, base)
    try:
        client = OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=3600)

        def ask(problem):
            t0 = time.perf_counter()
            response = client.chat.completions.create(
                model=server.model, messages=[{"role": "user", "content": problem.question}],
                max_tokens=args.max_new_tokens, temperature=0.0, extra_body=server.extra_body)
            return time.perf_counter() - t0, response, problem

        ask(problems[0])  # one request first: the engine's first step is not the load's
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            done = list(pool.map(ask, problems))
        wall = time.perf_counter() - started
        moved = switches(base)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
    if len({r.id for _, r, _ in done}) != len(problems):
        raise SystemExit(f"{server.label}: {len(problems)} requests, {len(done)} answers")
    latency = np.array([t for t, _, _ in done])
    return {"server": server.label, "requests": len(problems), "seconds": wall,
            "throughput": len(problems) / wall, "p50": float(np.percentile(latency, 50)),
            "p95": float(np.percentile(latency, 95)),
            "tokens": float(np.mean([r.usage.completion_tokens for _, r, _ in done])),
            "accuracy": float(np.mean([correct(r.choices[0], p.answer) for _, r, p in done])),
            "switches_per_s": None if moved is None else moved / wall}


def best_static_lambda(path: str) -> float:
    """The best static λ the main job chose on validation (its results.json)."""
    try:
        methods = json.loads(Path(path).read_text())["methods"]
        [lam] = next(m for m in methods if m["method"] == "best_static")["lambda_counts"]
        return float(lam)
    except (OSError, KeyError, StopIteration, ValueError) as err:
        raise SystemExit(f"{path}: no best static λ ({type(err).__name__}); run "
                         "./scripts/run_toy.sh first or pass --eval_results") from None


def servers(args: LoadArgs, merged: Path | None) -> list[Server]:
    rows = [dami_server(args, "dami-pref (ranker)", "dami-pref", 0, args.lambda_batching),
            dami_server(args, "fixed λ = 1 (Thinking)", "dami-pref@1", 0, args.lambda_batching)]
    if merged is not None:
        rows += [vllm_server(f"vLLM's server, merge λ={merged.name}, {parser or 'no'} "
                             "reasoning parser", merged, 0, args, parser)
                 for parser in (args.reasoning_parser, None)]
    return rows


def with_port(server: Server, port: int) -> Server:
    argv = list(server.argv)
    argv[argv.index("--port") + 1] = str(port)
    return Server(server.label, server.model, argv, server.extra_body)


def merged_folder(args: LoadArgs, root: Path) -> Path:
    """``dami-pref merge`` at the best static λ, into ``root``."""
    lam = args.static_lambda if args.static_lambda is not None \
        else best_static_lambda(args.eval_results)
    folder = root / f"{lam:g}"
    pair = [x for name in ("instruct", "thinking") if getattr(args, name)
            for x in (f"--{name}", getattr(args, name))]
    subprocess.run([sys.executable, "-m", "dami_pref.cli", "merge", "--lambda", str(lam),
                    "--output", str(folder), *pair], check=True, stdout=subprocess.DEVNULL)
    return folder


def report(args: LoadArgs, rows: list[dict]) -> None:
    print(f"{args.requests} requests from {args.concurrency} clients, chat completions, greedy, "
          f"max_tokens {args.max_new_tokens}, engine {args.engine}\n")
    print("| server | requests/s | p50 latency (s) | p95 latency (s) | mean tokens | accuracy | "
          "λ switches/s |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        moved = "–" if r["switches_per_s"] is None else f"{r['switches_per_s']:.2f}"
        print(f"| {r['server']} | {r['throughput']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | "
              f"{r['tokens']:.1f} | {100 * r['accuracy']:.1f}% | {moved} |")
    ranker = rows[0]["throughput"]
    print("\nthroughput ratios (the ranker's server against each): " + ", ".join(
        f"{r['server']}: {ranker / r['throughput']:.2f}×" for r in rows[1:]))


def main(argv: list[str] | None = None) -> int:
    from dami_pref.cli.parsing import parse_args
    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path

    args = parse_args(LoadArgs, argv, prog="serve_load.py", description=__doc__)
    if args.quick:
        args.requests, args.concurrency, args.max_new_tokens = 16, 4, 60
    problems = load_problems(args.questions or toy_problems_path("test"), limit=args.requests)
    problems = [problems[i % len(problems)] for i in range(args.requests)]
    with tempfile.TemporaryDirectory() as tmp:
        merged = merged_folder(args, Path(tmp)) if args.engine == "vllm" and not args.quick \
            else None
        rows = [run_load(args, with_port(server, port), port, problems)
                for server in servers(args, merged) for port in [free_port()]]
    report(args, rows)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
