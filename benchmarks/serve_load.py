"""``dami-pref serve`` under load: the ranker choosing λ against a fixed λ = 1 (Thinking) server.

    python benchmarks/serve_load.py --ranker outputs/toy/ranker                  # CPU
    python benchmarks/serve_load.py --ranker outputs/qwen3_4b/ranker --device cuda \\
        --instruct Qwen/Qwen3-4B-Instruct-2507 --thinking Qwen/Qwen3-4B-Thinking-2507 \\
        --max_new_tokens 4096 --requests 500 --concurrency 64
    python benchmarks/serve_load.py --ranker outputs/toy/ranker --engine vllm    # vLLM engine
    python benchmarks/serve_load.py --ranker outputs/toy/ranker --quick          # CI smoke

One server is started on loopback for each of the two runs, with the same settings; the same
requests (the toy test questions, or --questions FILE) are sent from --concurrency threads with
the official openai client, as model ``dami-pref`` (the ranker chooses) and ``dami-pref@1``
(every request at λ = 1). Reported: throughput, p50 / p95 latency, mean tokens and λ switches
per second (from the server's /metrics). Every request must be answered, exactly once.
"""

from __future__ import annotations

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
    quick: bool = False


def start(args: LoadArgs) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pair = [x for name in ("instruct", "thinking") if getattr(args, name)
            for x in (f"--{name}", getattr(args, name))]
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty engine never blocks on it
    proc = subprocess.Popen([sys.executable, "-m", "dami_pref.cli", "serve", "--ranker",
                             args.ranker, "--port", str(port), "--device", args.device,
                             "--max_new_tokens", str(args.max_new_tokens), "--max_batch",
                             str(args.max_batch), "--max_queue", str(max(256, args.requests)),
                             "--engine", args.engine, *pair], stderr=log, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    for _ in range(1800):
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(log.read().decode()[-3000:])
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            return proc, base
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def switches(base: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(base + "/metrics").read().decode()
    return sum(s.value for f in text_string_to_metric_families(text)
               if f.name == "dami_pref_lambda_switches" for s in f.samples
               if s.name.endswith("_total"))


def run_load(args: LoadArgs, model: str, prompts: list[str]) -> dict:
    from openai import OpenAI

    proc, base = start(args)
    try:
        client = OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=3600)

        def ask(prompt):
            t0 = time.perf_counter()
            response = client.completions.create(model=model, prompt=prompt)
            return time.perf_counter() - t0, response

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            done = list(pool.map(ask, prompts))
        wall = time.perf_counter() - started
        moved = switches(base)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
    if len({r.id for _, r in done}) != len(prompts):
        raise SystemExit(f"{model}: {len(prompts)} requests, {len(done)} answers")
    latency = np.array([t for t, _ in done])
    return {"model": model, "requests": len(prompts), "seconds": wall,
            "throughput": len(prompts) / wall, "p50": float(np.percentile(latency, 50)),
            "p95": float(np.percentile(latency, 95)),
            "tokens": float(np.mean([r.usage.completion_tokens for _, r in done])),
            "switches_per_s": moved / wall}


def main(argv: list[str] | None = None) -> int:
    from dami_pref.cli.parsing import parse_args
    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path

    args = parse_args(LoadArgs, argv, prog="serve_load.py", description=__doc__)
    if args.quick:
        args.requests, args.concurrency, args.max_new_tokens = 16, 4, 60
    problems = load_problems(args.questions or toy_problems_path("test"), limit=args.requests)
    prompts = [problems[i % len(problems)].question for i in range(args.requests)]
    rows = [run_load(args, model, prompts) for model in ("dami-pref", "dami-pref@1")]
    print(f"{args.requests} requests from {args.concurrency} clients, max_new_tokens "
          f"{args.max_new_tokens}, batches of ≤ {args.max_batch} of one λ\n")
    print("| server | requests/s | p50 latency (s) | p95 latency (s) | mean tokens | "
          "λ switches/s |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        label = "dami-pref (ranker)" if r["model"] == "dami-pref" else "fixed λ = 1 (Thinking)"
        print(f"| {label} | {r['throughput']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | "
              f"{r['tokens']:.1f} | {r['switches_per_s']:.2f} |")
    ratio = rows[0]["throughput"] / rows[1]["throughput"]
    print(f"\nthroughput ratio (dami-pref / Thinking): {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
