"""The two engines on one mixed-λ workload: the runtime (generate, generate_batch) and vLLM.

    python benchmarks/engine_throughput.py                      # the toy pair, toy test questions
    python benchmarks/engine_throughput.py --shape qwen3-4b --dtype bfloat16 --questions 512 \\
        --new_tokens 256                                         # a GPU: random Qwen3-4B pair
    python benchmarks/engine_throughput.py --quick              # CI smoke (needs vLLM)

Each question carries a λ drawn from the toy oracle's distribution (λ*(q) on the toy test set),
and each engine answers all of them, grouped by λ (one switch per distinct λ) or mixed (every λ
in one batch, ``lambda_batching="mixed"``):
  runtime generate        the interpolation runtime, static batches of --batch_size per λ group;
  runtime mixed           static batches of --batch_size in arrival order, every λ together;
  runtime generate_batch  the λ groups through transformers' continuous batching;
  vllm                    the vLLM engine, each λ group batched by vLLM itself;
  vllm mixed              every request given to vLLM at once, each with its λ.
With the toy pair, answers stop at the end token (each engine generates what it would in a
rollout); with --shape, a random pair of that shape is written to a temporary folder and every
question generates exactly --new_tokens tokens, so every engine does the same work.
Also reported: a vLLM switch (the host's lerp, then vLLM's reload) against the memory floor of the
bytes it moves, and what resetting the prefix cache costs the next call of long prompts.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from dami_pref.cli.parsing import parse_args
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

# λ*(q) on the 700 toy test questions (the oracle of ./scripts/run_toy.sh, 2026-11-22): shares
ORACLE_MIX = {0.0: 0.527, 0.1: 0.030, 0.2: 0.104, 0.3: 0.239, 0.4: 0.094, 0.5: 0.006}


@dataclass
class EngineArgs:
    shape: str | None = None  # None: the toy pair and its test questions
    dtype: str = "float32"
    questions: int = 256
    new_tokens: int = 220
    batch_size: int = 64
    prompt_tokens: int = 64  # --shape only
    long_prompts: int = 32  # distinct prompts of ~4 cache blocks for the prefix-cache figure
    repeats: int = 3  # switches timed per λ pair
    engines: str = "generate,mixed,generate_batch,vllm,vllm_mixed"  # rows (vllm always runs)
    out: str | None = None  # also write the figures as JSON
    quick: bool = False


def workload(args: EngineArgs, runtime) -> tuple[list[list[int]], list[float]]:
    rng = random.Random(0)
    lams = rng.choices(list(ORACLE_MIX), weights=list(ORACLE_MIX.values()), k=args.questions)
    if args.shape is None:
        from dami_pref.data.problems import load_problems
        from dami_pref.toy import toy_problems_path

        problems = load_problems(toy_problems_path("test"))[:args.questions]
        return runtime.encode_prompts([p.question for p in problems]), lams[:len(problems)]
    vocab = runtime.model.config.vocab_size
    return [[rng.randrange(10, vocab) for _ in range(args.prompt_tokens)] for _ in lams], lams


def by_lambda(lams: list[float]) -> dict[float, list[int]]:
    groups: dict[float, list[int]] = defaultdict(list)
    for i, lam in enumerate(lams):
        groups[lam].append(i)
    return dict(sorted(groups.items()))


def count(rows: list[list[int]], eos: set[int] | None) -> int:
    if eos is None:
        return sum(len(r) for r in rows)
    return sum(next((j + 1 for j, t in enumerate(r) if t in eos), len(r)) for r in rows)


def generation_config(host, args: EngineArgs):
    """(GenerationConfig, end tokens, pad id): stop at the end token on the toy pair, exactly
    --new_tokens tokens on a random pair."""
    from transformers import GenerationConfig

    from dami_pref.utils.tokens import end_token_ids

    eos = None if args.shape else end_token_ids(host.model, host.tokenizer)
    pad = host.tokenizer.pad_token_id
    fixed = dict(min_new_tokens=args.new_tokens) if eos is None else {}
    config = GenerationConfig(max_new_tokens=args.new_tokens, do_sample=False, pad_token_id=pad,
                              eos_token_id=sorted(eos) if eos else None, **fixed)
    return config, eos, pad


def static_batch(host, batch: list[list[int]], config, eos, pad) -> int:
    """One static batch through transformers' generate; the tokens it generated."""
    from dami_pref.utils.tokens import left_pad

    ids, mask = left_pad(batch, pad)
    out = host.model.generate(input_ids=ids.to(host.device), attention_mask=mask.to(host.device),
                              generation_config=config)
    return count(out[:, ids.shape[1]:].tolist(), eos)


def run_runtime(host, prompts, lams, args: EngineArgs, continuous: bool) -> int:
    """The interpolation runtime: λ written in place, then transformers generates."""
    from dami_pref.benchmarking import paged_cache_config

    config, eos, pad = generation_config(host, args)
    tokens = 0
    for lam, idx in by_lambda(lams).items():
        host.set_lambda(lam)
        with torch.no_grad():
            if continuous:
                chosen = [prompts[i] for i in idx]
                out = host.model.generate_batch(
                    chosen, generation_config=config, progress_bar=False,
                    continuous_batching_config=paged_cache_config(chosen, args.new_tokens))
                tokens += count([list(o.generated_tokens) for o in out.values()], eos)
                continue
            for at in range(0, len(idx), args.batch_size):
                tokens += static_batch(host, [prompts[i] for i in idx[at:at + args.batch_size]],
                                       config, eos, pad)
    return tokens


def run_runtime_mixed(host, prompts, lams, args: EngineArgs) -> int:
    """The runtime holding Θ_I and Δ: static batches in arrival order, each row at its λ."""
    config, eos, pad = generation_config(host, args)
    tokens = 0
    for at in range(0, len(prompts), args.batch_size):
        with torch.no_grad(), host.mixed_rows(lams[at:at + args.batch_size]):
            tokens += static_batch(host, prompts[at:at + args.batch_size], config, eos, pad)
    return tokens


def run_vllm_mixed(engine, prompts, lams, args: EngineArgs) -> int:
    """Every request to the mixed-λ engine at once, each with its λ (and its cache salt)."""
    from vllm import SamplingParams

    from dami_pref.runtime.vllm_engine import tokens_prompt
    from dami_pref.runtime.vllm_internals import LAMBDA_KEY

    fixed = args.shape is not None
    params = [SamplingParams(temperature=0.0, max_tokens=args.new_tokens, detokenize=False,
                             min_tokens=args.new_tokens if fixed else 0, ignore_eos=fixed,
                             stop_token_ids=None if fixed else sorted(engine._eos),
                             extra_args={LAMBDA_KEY: lam}) for lam in lams]
    outs = engine.llm.generate([tokens_prompt(p, lam, mixes=True) for p, lam in zip(prompts, lams)],
                               params, use_tqdm=False)
    return sum(len(o.outputs[0].token_ids) for o in outs)


def run_vllm(engine, prompts, lams, args: EngineArgs) -> int:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    fixed = args.shape is not None
    params = SamplingParams(temperature=0.0, max_tokens=args.new_tokens, detokenize=False,
                            min_tokens=args.new_tokens if fixed else 0, ignore_eos=fixed,
                            stop_token_ids=None if fixed else sorted(engine._eos))
    tokens = 0
    for lam, idx in by_lambda(lams).items():
        engine.set_lambda(lam)
        outs = engine.llm.generate([TokensPrompt(prompt_token_ids=prompts[i]) for i in idx],
                                   params, use_tqdm=False)
        tokens += sum(len(o.outputs[0].token_ids) for o in outs)
    return tokens


def timed_row(name: str, questions: int, fn) -> tuple[str, int, float, int]:
    """One engine's row: a warm-up pass, then the timed one."""
    fn()
    seconds, tokens = timed(fn)
    return name, questions, seconds, tokens


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def copy_gbps(nbytes: int) -> float:
    """Host memory bandwidth of one large copy (read + write counted)."""
    n = max(nbytes // 4, 1 << 20)
    a, b = torch.empty(n), torch.empty(n)
    b.copy_(a)
    seconds, _ = timed(lambda: b.copy_(a))
    return 2 * a.numel() * a.element_size() / seconds / 1e9


def switch_figures(engine, args: EngineArgs) -> dict:
    """A vLLM switch split into the host's lerp and vLLM's reload, each against its floor."""
    weight_bytes = sum(p.numel() * p.element_size() for p in engine.host.model.parameters())
    lerp, total = [], []
    for lam in [0.3, 0.7] * args.repeats:
        engine.set_lambda(0.5)
        t0 = time.perf_counter()
        engine.host.set_lambda(lam)
        lerp.append(time.perf_counter() - t0)
        engine.host.set_lambda(0.5)
        total.append(timed(lambda lam=lam: engine.set_lambda(lam))[0])
    bandwidth = copy_gbps(weight_bytes)
    lerp_ms, total_ms = 1e3 * min(lerp), 1e3 * min(total)
    return {"weight_mb": weight_bytes / 1e6, "copy_gbps": bandwidth,
            "lerp_ms": lerp_ms, "lerp_floor_ms": 3 * weight_bytes / bandwidth / 1e6,
            "reload_ms": total_ms - lerp_ms, "reload_floor_ms": 2 * weight_bytes / bandwidth / 1e6,
            "switch_ms": total_ms}


def prefix_cache_figures(engine, args: EngineArgs) -> dict:
    """The next call of the same long prompts with their blocks cached, then right after a reset
    (which is what every λ switch costs the prompts that come back at the new λ)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    vocab = min(engine.host.model.config.vocab_size, 100)
    length = min(512, engine.context or 512) - 16
    rng = random.Random(1)
    prompts = [TokensPrompt(prompt_token_ids=[rng.randrange(10, vocab) for _ in range(length)])
               for _ in range(args.long_prompts)]  # no block shared between prompts
    params = SamplingParams(temperature=0.0, max_tokens=1, detokenize=False)
    def call() -> float:
        return timed(lambda: engine.llm.generate(prompts, params, use_tqdm=False))[0]

    warm, cold, reset = [], [], []
    for _ in range(max(args.repeats, 3)):  # medians: each call is short
        call()  # the cache now holds every block of these prompts
        warm.append(call())
        reset.append(timed(engine.llm.reset_prefix_cache)[0])
        cold.append(call())
    return {"prompt_tokens": length, "prompts": args.long_prompts,
            "reset_ms": 1e3 * statistics.median(reset), "warm_s": statistics.median(warm),
            "cold_s": statistics.median(cold)}


def random_pair_folders(args: EngineArgs, root: Path) -> tuple[Path, Path]:
    from dami_pref.benchmarking import random_pair
    from dami_pref.toy.tokenizer import build_tokenizer
    from dami_pref.utils.devices import parse_dtype

    folders = root / "instruct", root / "thinking"
    for model, folder in zip(random_pair(args.shape, parse_dtype(args.dtype), torch.device("cpu"),
                                         shared_base_noise=0.01), folders):
        model.save_pretrained(folder)
        build_tokenizer().save_pretrained(folder)
    return folders


def vllm_rows(pair, prompts, lams, args: EngineArgs, chosen: set[str]) -> list:
    """vLLM grouped (with its switch and prefix-cache figures, last), then vLLM mixed: one engine
    at a time in this process."""
    from dami_pref.runtime.loader import load_runtime
    from dami_pref.runtime.vllm_engine import VLLMSettings

    settings = VLLMSettings(max_num_seqs=args.batch_size)
    engine = load_runtime(*pair, engine="vllm", dtype=args.dtype, vllm_settings=settings)
    rows = [timed_row("vllm", len(prompts), lambda: run_vllm(engine, prompts, lams, args))]
    figures = switch_figures(engine, args), prefix_cache_figures(engine, args)
    engine.close()
    if "vllm_mixed" in chosen:
        engine = load_runtime(*pair, engine="vllm", dtype=args.dtype, vllm_settings=settings,
                              lambda_batching="mixed")
        rows.append(timed_row("vllm mixed", len(prompts), lambda: run_vllm_mixed(
            engine, prompts, lams, args)))
        engine.close()
    return rows + [figures]


def report(args: EngineArgs, rows, switch, cache) -> None:
    print(f"{'toy pair' if args.shape is None else args.shape}, {args.dtype}; "
          f"{rows[0][1]} questions over {len(ORACLE_MIX)} λ values at most, "
          f"≤ {args.new_tokens} new tokens each")
    print(f"| engine | seconds | generated tokens | tokens/s | vs {rows[0][0]} |")
    print("|---|---:|---:|---:|---:|")
    base = rows[0][3] / rows[0][2]
    for name, _, seconds, tokens in rows:
        rate = tokens / seconds
        print(f"| {name} | {seconds:.2f} | {tokens:,} | {rate:,.0f} | {rate / base:.2f}× |")
    print(f"\nvLLM switch: {switch['switch_ms']:.1f} ms = host lerp {switch['lerp_ms']:.1f} ms "
          f"(floor {switch['lerp_floor_ms']:.1f}) + reload {switch['reload_ms']:.1f} ms (floor "
          f"{switch['reload_floor_ms']:.1f}); {switch['weight_mb']:.1f} MB of weights, copy "
          f"{switch['copy_gbps']:.1f} GB/s")
    print(f"prefix cache: reset {cache['reset_ms']:.2f} ms; the next call of {cache['prompts']} "
          f"prompts of {cache['prompt_tokens']} tokens takes {cache['cold_s']:.3f} s against "
          f"{cache['warm_s']:.3f} s warm ({cache['cold_s'] / cache['warm_s']:.2f}×)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(EngineArgs, argv, prog="engine_throughput.py", description=__doc__)
    if args.quick:
        args.questions, args.new_tokens, args.long_prompts, args.repeats = 12, 24, 4, 1
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.utils.devices import resolve_device

    device = resolve_device("auto")
    with tempfile.TemporaryDirectory() as tmp:
        pair = random_pair_folders(args, Path(tmp)) if args.shape else (TOY_INSTRUCT, TOY_THINKING)
        # The runtime on the device first, then freed, so vLLM finds the memory it profiles.
        runtime = InterpolationRuntime(*pair, device=device, dtype=args.dtype)
        prompts, lams = workload(args, runtime)
        chosen = {e.strip() for e in args.engines.split(",")}
        rows = [timed_row(f"runtime {name}", len(prompts), lambda c=continuous: run_runtime(
                    runtime, prompts, lams, args, c))
                for name, continuous in (("generate", False), ("generate_batch", True))
                if name in chosen]
        del runtime
        if "mixed" in chosen:
            mixed = InterpolationRuntime(*pair, device=device, dtype=args.dtype,
                                         lambda_batching="mixed")
            rows.insert(1, timed_row("runtime mixed", len(prompts), lambda: run_runtime_mixed(
                mixed, prompts, lams, args)))
            del mixed
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rows += vllm_rows(pair, prompts, lams, args, chosen)
        switch, cache = rows.pop()
    report(args, rows, switch, cache)
    if args.out:
        Path(args.out).write_text(json.dumps({
            "args": vars(args), "rows": [dict(engine=r[0], questions=r[1], seconds=r[2],
                                               tokens=r[3]) for r in rows],
            "switch": switch, "prefix_cache": cache}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
