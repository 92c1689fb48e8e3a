"""λ switch: the in-place runtime against the memory-bandwidth floor and the naive way.

    python benchmarks/lambda_switch.py --shapes toy,small --device cpu          # CPU, minutes
    python benchmarks/lambda_switch.py --shapes qwen3-0.6b,qwen3-4b --device cuda --dtype bfloat16
    python benchmarks/lambda_switch.py --quick                                  # CI smoke test

For each shape, one run measures side by side:
  floor    bytes a switch must move (read both endpoints, write the live weights) divided by the
           copy bandwidth measured on the same device in the same run (a large tensor copy);
  runtime  ``InterpolationRuntime.set_lambda`` (one fused lerp over flat buffers);
  naive    building the merged state dict tensor by tensor, then ``load_state_dict``.
It reports median times, achieved GB/s and the ratios runtime/floor and naive/runtime. Models
have random weights of the named shape: no download is needed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch

from dami_pref.benchmarking import SHAPES, device_name, random_runtime, remerge, timed
from dami_pref.toy.tokenizer import build_tokenizer
from dami_pref.cli.parsing import parse_args
from dami_pref.utils.devices import parse_dtype, resolve_device
from dami_pref.utils.io import atomic_write_json


@dataclass
class BenchArgs:
    shapes: str = field(default="toy,small", metadata={"help": f"comma list of {list(SHAPES)}"})
    device: str = "cpu"
    dtype: str = "float32"
    repeats: int = 10
    quick: bool = field(default=False, metadata={"help": "tiny shape, 2 repeats (CI smoke)"})
    out: str | None = field(default=None, metadata={"help": "write results JSON here"})


def copy_bandwidth(numel: int, dtype: torch.dtype, device: torch.device, repeats: int) -> float:
    """Bytes per second of a plain device copy of ``numel`` elements (read + write counted)."""
    src = torch.empty(numel, dtype=dtype, device=device).uniform_()
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, repeats)
    return 2 * numel * src.element_size() / seconds


def bench_shape(shape: str, device: torch.device, dtype: torch.dtype, repeats: int) -> dict:
    runtime = random_runtime(shape, dtype, device, build_tokenizer())
    n_params = sum(p.numel() for p in runtime.model.parameters())
    moved = runtime.bytes_per_switch
    bandwidth = copy_bandwidth(n_params, dtype, device, repeats)
    floor = moved / bandwidth
    lams = iter([0.3, 0.7] * (repeats + 2))
    switch = timed(lambda: runtime.set_lambda(next(lams)), device, repeats)
    naive_s = timed(lambda: remerge(runtime, 0.5), device, max(2, repeats // 2))
    return {
        "shape": shape, "parameters": n_params, "dtype": str(dtype).removeprefix("torch."),
        "bytes_per_switch": moved, "copy_bandwidth_GBps": bandwidth / 1e9,
        "floor_ms": 1e3 * floor, "switch_ms": 1e3 * switch,
        "switch_GBps": moved / switch / 1e9, "naive_ms": 1e3 * naive_s,
        "switch_over_floor": switch / floor, "naive_over_switch": naive_s / switch,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(BenchArgs, argv, prog="lambda_switch.py", description=__doc__)
    shapes = ["tiny"] if args.quick else [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        print(f"lambda_switch.py: unknown shape(s) {unknown}; choose from {list(SHAPES)}",
              file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    dtype = parse_dtype(args.dtype)
    repeats = 2 if args.quick else args.repeats
    rows = [bench_shape(shape, device, dtype, repeats) for shape in shapes]
    print(f"device: {device_name(device)}; torch {torch.__version__}; "
          f"{datetime.now(timezone.utc):%Y-%m-%d}")
    print("| shape | params | dtype | MB moved | copy GB/s | floor ms | switch ms | switch GB/s "
          "| naive ms | switch / floor | naive / switch |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['shape']} | {r['parameters'] / 1e6:.1f}M | {r['dtype']} | "
              f"{r['bytes_per_switch'] / 1e6:.1f} | {r['copy_bandwidth_GBps']:.1f} | "
              f"{r['floor_ms']:.3f} | {r['switch_ms']:.3f} | {r['switch_GBps']:.1f} | "
              f"{r['naive_ms']:.3f} | {r['switch_over_floor']:.2f}× | "
              f"{r['naive_over_switch']:.2f}× |")
    if args.out:
        atomic_write_json(args.out, {"device": device_name(device), "torch": torch.__version__,
                                     "date": f"{datetime.now(timezone.utc):%Y-%m-%d}",
                                     "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
