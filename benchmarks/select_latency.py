"""``select`` latency: start-up, then per-question time batched and one question at a time.

    python benchmarks/select_latency.py --ranker outputs/toy/ranker
    python benchmarks/select_latency.py --ranker outputs/toy/ranker --device cuda

Start-up is ``LambdaRanker.from_pretrained`` in a fresh process (imports excluded and reported
apart); per-question latency is the median over repeats of scoring the toy test questions in
batches of --batch_size, and one question per call.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass


@dataclass
class LatencyArgs:
    ranker: str = "outputs/toy/ranker"
    questions: int = 256
    batch_size: int = 64
    single: int = 64
    repeats: int = 3
    device: str = "cpu"


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()  # the imports are part of what a user waits for, so timed too
    import torch

    from dami_pref import LambdaRanker
    from dami_pref.benchmarking import timed
    from dami_pref.cli.parsing import parse_args
    from dami_pref.data.problems import load_problems
    from dami_pref.toy import toy_problems_path

    imports = time.perf_counter() - t0
    args = parse_args(LatencyArgs, argv, prog="select_latency.py", description=__doc__)
    t1 = time.perf_counter()
    ranker = LambdaRanker.from_pretrained(args.ranker, device=args.device)
    load = time.perf_counter() - t1
    questions = [p.question for p in load_problems(toy_problems_path("test"))][:args.questions]
    ranker.select(questions[:8])  # warm-up

    batched = timed(lambda: ranker.select(questions, batch_size=args.batch_size), ranker.device,
                    args.repeats, warmup=False)
    single = timed(lambda: [ranker.select([q]) for q in questions[:args.single]], ranker.device,
                   args.repeats, warmup=False)
    per_batched = 1e3 * batched / len(questions)
    per_single = 1e3 * single / args.single
    print(f"device {ranker.device}, torch threads {torch.get_num_threads()}, grid of "
          f"{len(ranker.grid)} λ, backbone {ranker.config['backbone']}")
    print("| measure | value |\n|---|---:|")
    print(f"| imports (torch, transformers, peft) | {imports:.2f} s |")
    print(f"| start-up: from_pretrained | {load:.2f} s |")
    print(f"| per question, batches of {args.batch_size} ({len(questions)} questions) | "
          f"{per_batched:.3f} ms |")
    print(f"| per question, one at a time ({args.single} calls) | {per_single:.3f} ms |")
    print(f"\nbatching is {per_single / per_batched:.1f}× faster per question")
    return 0


if __name__ == "__main__":
    sys.exit(main())
