"""Memory modes of the runtime: exact (3 copies) against delta (2 copies), memory and error.

    python benchmarks/memory_modes.py --shapes toy,small,qwen3-0.6b --dtype bfloat16
    python benchmarks/memory_modes.py --shapes qwen3-4b --dtype bfloat16 --device cuda
    python benchmarks/memory_modes.py --quick                        # CI smoke

memory: each mode builds its runtime from a random-weight pair in a fresh process; reported are
the bytes of weights it holds and the peak memory of building it (peak RSS above the process's
start on CPU, torch's peak allocation on GPU). error: after 1, 10, 100 and 1000 switches to
seeded random λ, then to λ=0.37, the live weights are compared with the float32 blend
lerp(Θ_I, Θ_T, 0.37): relative RMS error, and the share of weights equal to that blend rounded
once to the model dtype (exact mode: all of them, by construction).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dami_pref.benchmarking import PeakMemory, random_pair, random_runtime
from dami_pref.toy.tokenizer import build_tokenizer
from dami_pref.cli.parsing import parse_args
from dami_pref.utils.devices import parse_dtype, resolve_device

NOISE = 0.01  # Θ_T = Θ_I + 1 % relative noise: a pair that shares a base


@dataclass
class ModeArgs:
    shapes: str = "toy,small"
    dtype: str = "bfloat16"
    device: str = "cpu"
    switches: str = "1,10,100,1000"
    quick: bool = False
    single: str | None = field(default=None, metadata={"help": "internal: shape:mode memory run"})


def memory_single(args: ModeArgs) -> dict:
    # imported (and the tokenizer built once) before the baseline, so they are not counted
    import transformers  # noqa: F401

    import dami_pref.runtime  # noqa: F401

    tokenizer = build_tokenizer()

    shape, mode = args.single.split(":")
    device = resolve_device(args.device)
    meter = PeakMemory(device).start(from_zero=device.type == "cuda")
    runtime = random_runtime(shape, parse_dtype(args.dtype), device, tokenizer, mode, NOISE)
    runtime.set_lambda(0.5)
    return {"shape": shape, "mode": mode, "resident_bytes": runtime.resident_bytes,
            "peak_bytes": meter.peak()}


def references(shape: str, dtype: torch.dtype, device: torch.device):
    """Copies of both endpoints' weights, to compare the live weights with."""
    instruct, thinking = random_pair(shape, dtype, device, NOISE)
    return ({n: p.detach().clone() for n, p in instruct.named_parameters()},
            {n: p.detach().clone() for n, p in thinking.named_parameters()})


def errors(shape: str, dtype: torch.dtype, device: torch.device, mode: str,
           checkpoints: list[int]) -> list[dict]:
    ref_i, ref_t = references(shape, dtype, device)
    runtime = random_runtime(shape, dtype, device, build_tokenizer(), mode, NOISE)
    rng = random.Random(0)
    done, rows = 0, []
    for target in checkpoints:
        for _ in range(target - done):
            runtime.set_lambda(rng.random())
        done = target
        runtime.set_lambda(0.37)
        num = den = 0.0
        same = total = 0
        with torch.no_grad():
            for name, live in runtime.model.named_parameters():
                exact = torch.lerp(ref_i[name].float(), ref_t[name].float(), 0.37)
                num += float(((live.float() - exact) ** 2).sum())
                den += float((exact ** 2).sum())
                same += int((live == exact.to(live.dtype)).sum())
                total += live.numel()
        runtime.set_lambda(rng.random())  # leave λ=0.37 so the next checkpoint really moves
        done += 1
        rows.append({"shape": shape, "mode": mode, "switches": target,
                     "relative_rms_error": (num / den) ** 0.5, "exactly_rounded": same / total})
    return rows


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    args = parse_args(ModeArgs, argv, prog="memory_modes.py", description=__doc__)
    if args.quick:
        args.shapes, args.switches = "tiny", "1,10"
    if args.single:
        print(json.dumps(memory_single(args)))
        return 0
    shapes = [s for s in args.shapes.split(",") if s]
    checkpoints = [int(x) for x in args.switches.split(",")]
    device = resolve_device(args.device)
    memory = []
    for shape in shapes:
        for mode in ("exact", "delta"):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--single", f"{shape}:{mode}",
                   "--dtype", args.dtype, "--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                return proc.returncode
            memory.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"device {device}, dtype {args.dtype}")
    print("| shape | mode | weights held (MB) | peak while building (MB) |\n|---|---|---:|---:|")
    for r in memory:
        held = r["resident_bytes"] / 1e6
        print(f"| {r['shape']} | {r['mode']} | {held:.{3 if held < 10 else 1}f} | "
              f"{r['peak_bytes'] / 1e6:.1f} |")
    print("\n| shape | mode | switches before λ=0.37 | relative RMS error vs float32 blend | "
          "weights equal to the blend rounded once |\n|---|---|---:|---:|---:|")
    for shape in shapes:
        for mode in ("exact", "delta"):
            for r in errors(shape, parse_dtype(args.dtype), device, mode, checkpoints):
                print(f"| {shape} | {mode} | {r['switches']} | {r['relative_rms_error']:.2e} | "
                      f"{100 * r['exactly_rounded']:.2f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
