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


@dataclass
class ModeArgs:
    shapes: str = "toy,small"
    dtype: str = "bfloat16"
    device: str = "cpu"
    switches: str = "1,10,100,1000"
    quick: bool = False
    single: str | None = field(default=None, metadata={"help": "internal: shape:mode memory run"})


def build(shape: str, dtype: torch.dtype, device: torch.device, mode: str, keep: bool):
    from benchmarks.lambda_switch import random_pair
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.toy_tokenizer import build_tokenizer

    instruct, thinking = random_pair(shape, dtype, device)
    with torch.no_grad():  # a pair that shares a base: Θ_T = Θ_I + small noise
        for pi, pt in zip(instruct.parameters(), thinking.parameters()):
            pt.copy_(pi + 0.01 * pi.std() * torch.randn_like(pi))
    originals = None
    if keep:
        originals = ({n: p.detach().clone() for n, p in instruct.named_parameters()},
                     {n: p.detach().clone() for n, p in thinking.named_parameters()})
    runtime = InterpolationRuntime.from_models(instruct, thinking, build_tokenizer(),
                                               memory_mode=mode)
    return runtime, originals


def memory_single(args: ModeArgs) -> dict:
    import resource

    import transformers  # noqa: F401 - imported before the baseline, so it is not counted

    from benchmarks.lambda_switch import random_pair  # noqa: F401
    from dami_pref.runtime import DTYPES, InterpolationRuntime, resolve_device  # noqa: F401

    shape, mode = args.single.split(":")
    device = resolve_device(args.device)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runtime, _ = build(shape, DTYPES[args.dtype], device, mode, keep=False)
    runtime.set_lambda(0.5)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start
    return {"shape": shape, "mode": mode, "resident_bytes": runtime.resident_bytes,
            "peak_bytes": peak}


def errors(shape: str, dtype: torch.dtype, device: torch.device, mode: str,
           checkpoints: list[int]) -> list[dict]:
    runtime, (ref_i, ref_t) = build(shape, dtype, device, mode, keep=True)
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
    sys.path.insert(0, str(root))
    from dami_pref.arguments import parse_args
    from dami_pref.runtime import DTYPES, resolve_device

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
            for r in errors(shape, DTYPES[args.dtype], device, mode, checkpoints):
                print(f"| {shape} | {mode} | {r['switches']} | {r['relative_rms_error']:.2e} | "
                      f"{100 * r['exactly_rounded']:.2f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
