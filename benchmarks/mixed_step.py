"""What mixing λ costs per decoding step, on both engines: one batch of prompts decoded for a
fixed number of tokens (the end token ignored) at several distinct λ, against the same batch at
one λ on the plain model.

    python benchmarks/mixed_step.py                        # the toy pair, 64 prompts, 6 λ, CPU
    python benchmarks/mixed_step.py --shape qwen3-4b --dtype bfloat16 --lambdas 0,0.3,0.6,1 \\
        --new_tokens 256 --engines vllm                    # a GPU: random Qwen3-4B-shaped pair
    python benchmarks/mixed_step.py --quick                # CI smoke

runtime: the interpolation runtime with ``lambda_batching="mixed"`` (Θ and Δ); one λ is the plain
model after a switch (its rows at the live λ skip Δ), several λ add (λ_row − λ)·f(x; Δ) per leaf.
vllm: the grouped engine (the plain model at one λ) against the mixed engine (``DamiMixed<Arch>``:
[W_I; Δ] stacked per linear layer) at several λ, and the mixed engine at one λ. One process holds
one vLLM engine at a time, so the engines alternate over --rounds and the figures are medians:
this machine's speed drifts between engine starts by more than the effect measured.
"""

from __future__ import annotations

import json
import random
import statistics
from contextlib import nullcontext
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dami_pref.cli.parsing import parse_args
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING


@dataclass
class StepArgs:
    shape: str | None = None  # None: the toy pair; else a random pair of that shape
    dtype: str = "float32"
    batch: int = 64  # prompts decoded together
    prompt_tokens: int = 16
    new_tokens: int = 128
    lambdas: str = "0,0.1,0.2,0.3,0.4,0.5"  # the mixed batch's λ, spread over its rows
    one_lambda: float = 0.3  # the single-λ batch
    rounds: int = 3  # alternations of the engines
    repeats: int = 3  # timed batches per engine per round
    engines: str = "runtime,vllm"
    compiled: bool = False  # vLLM compiled (as its server runs on a CPU); its plain row at λ = 0
    profile: bool = False  # also profile one runtime batch of each kind: where a step's time goes
    out: str | None = None
    quick: bool = False


def prompts_of(args: StepArgs, vocab: int) -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(10, vocab) for _ in range(args.prompt_tokens)]
            for _ in range(args.batch)]


def spread(args: StepArgs) -> list[float]:
    lams = [float(x) for x in args.lambdas.split(",")]
    return [lams[i % len(lams)] for i in range(args.batch)]


def runtime_rate(runtime, prompts, lams, args: StepArgs) -> float:
    """Generated tokens per second of one static batch, every row at its λ."""
    from dami_pref.utils.tokens import left_pad

    ids, mask = left_pad(prompts, runtime.tokenizer.pad_token_id)
    ids, mask = ids.to(runtime.device), mask.to(runtime.device)
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                  do_sample=False, pad_token_id=runtime.tokenizer.pad_token_id)
    if len(set(lams)) == 1:
        runtime.set_lambda(lams[0])
    started = time.perf_counter()
    with torch.no_grad(), (runtime.mixed_rows(lams) if len(set(lams)) > 1 else nullcontext()):
        out = runtime.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return (out.shape[1] - ids.shape[1]) * len(prompts) / (time.perf_counter() - started)


def vllm_rate(engine, prompts, lams, args: StepArgs) -> float:
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.runtime.vllm_engine import sampling_params, tokens_prompt

    options = DecodingOptions(max_new_tokens=args.new_tokens)
    mixes = engine.mixes_lambdas
    if not mixes:
        engine.set_lambda(lams[0])
    started = time.perf_counter()
    outs = engine.llm.generate(
        [tokens_prompt(p, lam, mixes) for p, lam in zip(prompts, lams)],
        [sampling_params(options, 0, lam, set(), mixes, ignore_eos=True, min_tokens=args.new_tokens)
         for lam in lams], use_tqdm=False)
    return sum(len(o.outputs[0].token_ids) for o in outs) / (time.perf_counter() - started)


def timed(rate, *params, repeats: int) -> list[float]:
    rate(*params)  # warm-up
    return [rate(*params) for _ in range(repeats)]


def runtime_rows(pair, args: StepArgs) -> dict[str, list[float]]:
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.utils.devices import resolve_device

    runtime = InterpolationRuntime(*pair, device=resolve_device("auto"), dtype=args.dtype,
                                   lambda_batching="mixed")
    prompts = prompts_of(args, runtime.model.config.vocab_size)
    rows: dict[str, list[float]] = {"runtime, one λ (plain)": [], "runtime, mixed λ": []}
    for _ in range(args.rounds):
        rows["runtime, one λ (plain)"] += timed(runtime_rate, runtime, prompts,
                                                [args.one_lambda] * args.batch, args,
                                                repeats=args.repeats)
        rows["runtime, mixed λ"] += timed(runtime_rate, runtime, prompts, spread(args), args,
                                          repeats=args.repeats)
    if args.profile:
        for label, lams in (("one λ (plain)", [args.one_lambda] * args.batch),
                            ("mixed λ", spread(args))):
            with torch.profiler.profile() as profile:
                runtime_rate(runtime, prompts, lams, args)
            print(f"runtime, {label}: the operators that took the most time\n" +
                  profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=6))
    return rows


def vllm_rows(pair, args: StepArgs) -> dict[str, list[float]]:
    import gc

    from dami_pref.runtime.loader import load_runtime
    from dami_pref.runtime.vllm_engine import VLLMSettings

    rows: dict[str, list[float]] = {"vllm grouped, one λ (plain)": [], "vllm mixed, mixed λ": [],
                                    "vllm mixed, one λ": []}
    # compiled: the plain engine stays at λ = 0, the Instruct folder as loaded (a compiled graph
    # is not meant for weights switched in place); eager: one switch to --one_lambda
    settings = VLLMSettings(max_num_seqs=args.batch,
                            enforce_eager=False if args.compiled else None)
    for _ in range(args.rounds):
        for batching in ("grouped", "mixed"):
            engine = load_runtime(*pair, engine="vllm", dtype=args.dtype, lambda_batching=batching,
                                  vllm_settings=settings)
            prompts = prompts_of(args, engine.host.model.config.vocab_size)
            one = [args.one_lambda] * args.batch
            if batching == "grouped":
                plain = [0.0] * args.batch if args.compiled else one
                rows["vllm grouped, one λ (plain)"] += timed(vllm_rate, engine, prompts, plain,
                                                             args, repeats=args.repeats)
            else:
                rows["vllm mixed, mixed λ"] += timed(vllm_rate, engine, prompts, spread(args),
                                                     args, repeats=args.repeats)
                rows["vllm mixed, one λ"] += timed(vllm_rate, engine, prompts, one, args,
                                                   repeats=args.repeats)
            engine.close()
            del engine
            gc.collect()
    return rows


def report(args: StepArgs, rows: dict[str, list[float]]) -> dict:
    lams = sorted(set(spread(args)))
    print(f"{args.shape or 'toy pair'}, {args.dtype}; {args.batch} prompts × {args.new_tokens} "
          f"tokens; mixed: {len(lams)} λ ({', '.join(f'{x:g}' for x in lams)}); one λ: "
          f"{args.one_lambda:g}; medians of {args.rounds} rounds × {args.repeats}\n")
    print("| engine, batch | tokens/s (median) | min–max | vs the plain model at one λ |")
    print("|---|---:|---:|---:|")
    medians = {name: statistics.median(v) for name, v in rows.items()}
    for name, values in rows.items():
        plain = medians[[n for n in medians if n.split()[0] == name.split()[0]][0]]
        print(f"| {name} | {medians[name]:,.0f} | {min(values):,.0f}–{max(values):,.0f} | "
              f"{medians[name] / plain:.2f}× |")
    return medians


def main(argv: list[str] | None = None) -> int:
    args = parse_args(StepArgs, argv, prog="mixed_step.py", description=__doc__)
    if args.quick:
        args.batch, args.new_tokens, args.rounds, args.repeats = 8, 8, 1, 1
    engines = {e.strip() for e in args.engines.split(",")}
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.shape:
            from engine_throughput import EngineArgs, random_pair_folders

            pair = random_pair_folders(EngineArgs(shape=args.shape, dtype=args.dtype), Path(tmp))
        else:
            pair = (TOY_INSTRUCT, TOY_THINKING)
        if "runtime" in engines:
            rows.update(runtime_rows(pair, args))
        if "vllm" in engines:
            rows.update(vllm_rows(pair, args))
    medians = report(args, rows)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows,
                                              "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
