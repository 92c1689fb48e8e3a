"""Ranker training steps under DeepSpeed ZeRO-2 and ZeRO-3: step time and peak memory.

    python benchmarks/deepspeed_step.py --pairs outputs/toy/pairs --shape qwen3-0.6b        # CPU
    python benchmarks/deepspeed_step.py --pairs outputs/toy/pairs --shape qwen3-0.6b \\
        --processes 8 --dtype bfloat16                                                      # GPUs
    python benchmarks/deepspeed_step.py --pairs PAIRS --quick                               # smoke

A random-weight causal LM of the named shape is saved as the backbone folder (with the toy
tokenizer), and ``accelerate launch --config_file configs/accelerate/deepspeed_zero{2,3}.yaml
train/pref.py`` trains the λ-head ranker (LoRA r=16 on every linear layer) for --steps steps on
the pairs. Reported from the run's dami_pref.json: seconds per optimizer step (the mean over
the steps, the first included) and the peak memory of the main process (torch's peak
allocation on a GPU, peak RSS on a CPU).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dami_pref.benchmarking import shape_config
from dami_pref.cli.parsing import parse_args
from dami_pref.utils.devices import parse_dtype


@dataclass
class StepArgs:
    pairs: str = "outputs/toy/pairs"
    shape: str = "qwen3-0.6b"
    dtype: str = "float32"
    steps: int = 4
    batch_size: int = 4
    processes: int = 1
    stages: str = "2,3"
    quick: bool = False


def save_backbone(shape: str, dtype: str, folder: Path) -> None:
    import torch
    from transformers import Qwen3ForCausalLM

    from dami_pref.toy.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    config = shape_config(shape, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).to(parse_dtype(dtype)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    args = parse_args(StepArgs, argv, prog="deepspeed_step.py", description=__doc__)
    if args.quick:
        args.shape, args.steps, args.stages = "tiny", 2, "2"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backbone = Path(tmp) / "backbone"
        save_backbone(args.shape, args.dtype, backbone)
        for stage in [s.strip() for s in args.stages.split(",") if s.strip()]:
            out = Path(tmp) / f"zero{stage}"
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(root / "configs" / "accelerate" / f"deepspeed_zero{stage}.yaml"),
                   "--num_processes", str(args.processes), "--main_process_port", str(port),
                   str(root / "train" / "pref.py"), "--pairs", args.pairs, "--output_dir",
                   str(out), "--model_name_or_path", str(backbone), "--max_steps",
                   str(args.steps), "--per_device_train_batch_size", str(args.batch_size),
                   "--lora_r", "16", "--lora_alpha", "32", "--eval_strategy", "no",
                   "--save_strategy", "no", "--per_device_eval_batch_size", "16",
                   "--max_length", "64", "--report_to", "none", "--disable_tqdm", "true",
                   "--dtype", args.dtype]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root,
                                  env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() or 1)})
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            training = json.loads((out / "dami_pref.json").read_text())["training"]
            rows.append((stage, training))
    print(f"shape {args.shape} ({args.dtype}) + LoRA r=16, {args.processes} process(es), batches "
          f"of {args.batch_size} problems, {args.steps} steps")
    print("| ZeRO stage | seconds / step | peak memory (MB) | distributed type |\n"
          "|---|---:|---:|---|")
    for stage, t in rows:
        print(f"| {stage} | {t['seconds'] / t['steps']:.2f} | "
              f"{t['peak_memory_bytes'] / 1e6:,.0f} | {t['distributed_type']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
