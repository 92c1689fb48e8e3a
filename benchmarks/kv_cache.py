"""KV caches side by side: does a cache change answers, and what does it save?

    python benchmarks/kv_cache.py --part toy          # accuracy and tokens per λ, toy test set
    python benchmarks/kv_cache.py --part memory       # random-weight model, long generations
    python benchmarks/kv_cache.py --part memory --device cuda --shape qwen3-4b \\
        --new_tokens 16384 --batch_size 8              # on a GPU
    python benchmarks/kv_cache.py --quick             # CI smoke

toy: the bundled pair answers the toy test set at each λ of --grid with every cache; a short
full-precision window (--residual_length 8) makes the quantized caches quantize most of each
trace. memory: a random-weight model of --shape generates exactly --new_tokens tokens for a batch
with each cache, each in its own process; reported are the bytes the cache holds at the end
(every tensor of the cache object: quantized codes, scales and zero points, the full-precision
window), what that means in sequences per GB of cache, the peak memory above the loaded model
(the process's peak RSS on CPU, which the allocator blurs; torch's peak allocation on GPU, which
also counts the full-precision copy a quantized layer makes while attending) and tokens/s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dami_pref.benchmarking import PeakMemory, shape_config, time_once
from dami_pref.cli.parsing import parse_args
from dami_pref.errors import DamiPrefError
from dami_pref.runtime.kv_cache import KVCacheOptions, cache_bytes
from dami_pref.utils.devices import resolve_device
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

CACHES = [("dynamic", "hqq"), ("quantized-4", "hqq"), ("quantized-2", "hqq"),
          ("quantized-4", "quanto"), ("quantized-2", "quanto"), ("offloaded", "hqq")]


@dataclass
class KVArgs:
    part: str = field(default="toy", metadata={"help": "toy or memory"})
    grid: str = "0,0.5,1"
    limit: int | None = None
    residual_length: int | None = field(default=None, metadata={
        "help": "full-precision window of the quantized caches (default: 8 for toy, so most of "
                "each short trace is quantized; 128, transformers' default, for memory)"})
    group_size: int | None = field(default=None, metadata={"help": "default 32 toy, 64 memory"})
    shape: str = "small"
    new_tokens: int = 2048
    batch_size: int = 4
    device: str = "cpu"
    quick: bool = False
    single: str | None = field(default=None, metadata={"help": "internal: one cache, memory part"})


def cache_options(kind: str, backend: str, args: KVArgs) -> KVCacheOptions:
    return KVCacheOptions(kind, backend, args.residual_length, args.group_size)


def toy_part(args: KVArgs) -> None:
    from dami_pref.data.problems import load_problems
    from dami_pref.evaluation.sweep import run_sweep, summarize_outcomes
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.toy import TOY_BUDGET, toy_problems_path
    from dami_pref.utils.grid import parse_grid

    runtime = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device=args.device)
    problems = load_problems(toy_problems_path("test"), limit=args.limit)
    grid = parse_grid(args.grid)
    reference = None
    print(f"{len(problems)} toy test problems; quantized caches keep the newest "
          f"{args.residual_length} tokens in full precision, groups of {args.group_size}")
    print("| cache | backend | " + " | ".join(f"acc λ={g:g}" for g in grid) + " | "
          + " | ".join(f"tokens λ={g:g}" for g in grid) + " | answers ≠ dynamic | seconds |")
    print("|---|---|" + "---:|" * (2 * len(grid)) + "---:|---:|")
    for kind, backend in CACHES:
        options = DecodingOptions(max_new_tokens=TOY_BUDGET, batch_size=128,
                                  kv_cache=cache_options(kind, backend, args))
        try:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as scratch:  # a fresh rollout folder per cache
                outcomes = run_sweep(runtime, problems, grid, options, Path(scratch),
                                     pair={"benchmark": "kv_cache"}, progress=False)
            seconds = time.perf_counter() - start
        except DamiPrefError as err:
            print(f"| {kind} | {backend if kind.startswith('quantized') else '—'} | "
                  f"not run: {err} |" + " |" * (2 * len(grid) + 1))
            continue
        answers = [o.answer for lam in grid for o in outcomes[lam]]
        if reference is None:
            reference = answers
        differ = sum(a != b for a, b in zip(answers, reference))
        cells = " | ".join(f"{100 * summarize_outcomes(outcomes[g])['accuracy']:.1f}%" for g in grid)
        tokens = " | ".join(f"{summarize_outcomes(outcomes[g])['mean_tokens']:.1f}" for g in grid)
        print(f"| {kind} | {backend if kind.startswith('quantized') else '—'} | {cells} | "
              f"{tokens} | {differ} of {len(answers)} | {seconds:.1f} |")


def memory_single(args: KVArgs) -> dict:
    """One cache in this process: peak memory above the loaded model, and tokens per second."""
    import torch
    from transformers import Qwen3ForCausalLM

    kind, backend = args.single.split(":")
    device = resolve_device(args.device)
    options = cache_options(kind, backend, args)
    options.check(device)
    config = shape_config(args.shape, max_positions=args.new_tokens + 64)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = Qwen3ForCausalLM(config).to(device=device, dtype=dtype).eval()
    prompt = torch.randint(10, config.vocab_size, (args.batch_size, 32), device=device)
    kwargs = dict(do_sample=False, pad_token_id=0, eos_token_id=None, **options.generate_kwargs())
    out = None

    def generate() -> None:
        nonlocal out
        out = model.generate(prompt, max_new_tokens=args.new_tokens,
                             min_new_tokens=args.new_tokens, return_dict_in_generate=True,
                             **kwargs)

    with torch.no_grad():
        # Warm-up past the full-precision window, so the quantizer's imports, kernels and first
        # allocations are paid before the baseline is read.
        warm = min(args.residual_length + 16, args.new_tokens)
        model.generate(prompt, max_new_tokens=warm, min_new_tokens=warm, **kwargs)
        meter = PeakMemory(device).start()
        seconds = time_once(generate, device)
        peak = meter.peak()
    kv_full = (2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim
               * (32 + args.new_tokens - 1) * args.batch_size * torch.finfo(dtype).bits // 8)
    return {"cache": kind, "backend": backend, "peak_bytes": peak, "seconds": seconds,
            "cache_bytes": cache_bytes(out.past_key_values),
            "tokens_per_s": args.new_tokens * args.batch_size / seconds,
            "full_precision_kv_bytes": kv_full}


def memory_part(args: KVArgs) -> None:
    root = Path(__file__).resolve().parents[1]
    rows = []
    for kind, backend in CACHES:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", "memory", "--single",
               f"{kind}:{backend}", "--shape", args.shape, "--new_tokens", str(args.new_tokens),
               "--batch_size", str(args.batch_size), "--device", args.device,
               "--residual_length", str(args.residual_length), "--group_size",
               str(args.group_size)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
        if proc.returncode != 0:
            reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
            reason = reason.removeprefix("dami_pref.errors.DamiPrefError: ")
            rows.append({"cache": kind, "backend": backend, "error": reason})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"shape {args.shape}, batch {args.batch_size}, {args.new_tokens} new tokens, device "
          f"{args.device}; quantized: newest {args.residual_length} tokens in full precision, "
          f"groups of {args.group_size}")
    print("| cache | backend | cache at the end (MB) | vs dynamic | sequences per GB of cache | "
          "peak memory above model (MB) | tokens/s | vs dynamic |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|")
    dynamic = next((r for r in rows if r["cache"] == "dynamic" and "error" not in r), None)
    for r in rows:
        backend = r["backend"] if r["cache"].startswith("quantized") else "—"
        if "error" in r:
            print(f"| {r['cache']} | {backend} | not run: {r['error'][:160]} | | | | | |")
            continue
        ratio = (lambda key: f"{r[key] / dynamic[key]:.2f}×" if dynamic else "—")
        per_gb = 1e9 / (r["cache_bytes"] / args.batch_size)
        print(f"| {r['cache']} | {backend} | {r['cache_bytes'] / 1e6:.1f} | {ratio('cache_bytes')} "
              f"| {per_gb:,.0f} | {r['peak_bytes'] / 1e6:.0f} | {r['tokens_per_s']:.1f} | "
              f"{ratio('tokens_per_s')} |")
    if dynamic:
        print(f"\nfull-precision KV cache of this run by formula: "
              f"{dynamic['full_precision_kv_bytes'] / 1e6:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(KVArgs, argv, prog="kv_cache.py", description=__doc__)
    # The quantized cache requantizes its whole quantized part whenever the window fills, so a
    # short window suits short toy traces but costs quadratic time on long generations.
    toy = args.part == "toy"
    args.residual_length = args.residual_length or (8 if toy else 128)
    args.group_size = args.group_size or (32 if toy else 64)
    if args.quick:
        args.limit, args.grid, args.new_tokens, args.shape = 14, "0.5", 64, "tiny"
        args.residual_length = min(args.residual_length, 16)
    if args.single:
        print(json.dumps(memory_single(args)))
        return 0
    if args.part == "toy":
        toy_part(args)
    elif args.part == "memory":
        memory_part(args)
    else:
        print(f"kv_cache.py: --part must be toy or memory, got {args.part!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
