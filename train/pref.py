"""Train the DAMI-Pref ranker (or the DAMI-Pred / DAMI-Routing baselines) on preference pairs.

The same command as ``dami-pref train``; this script is what ``accelerate launch`` starts.

    accelerate launch train/pref.py --config configs/toy/train.yaml               # CPU, minutes
    accelerate launch --config_file configs/accelerate/cpu.yaml --num_processes 2 \\
        train/pref.py --config configs/toy/train.yaml                            # 2 CPU processes
    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml \\
        train/pref.py --config configs/toy/train.yaml                            # DeepSpeed ZeRO-2
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml --num_processes 8 \\
        train/pref.py --config configs/qwen3_4b/train.yaml                       # GPU node
    accelerate launch train/pref.py --config configs/toy/train.yaml --objective pred \\
        --output outputs/toy/ranker_pred
    accelerate launch train/pref.py --config configs/toy/train.yaml \\
        --resume_from_checkpoint true                                          # after a stop

Reads a pairs folder and writes a ranker folder: the LoRA adapter (with the score layer), the
tokenizer and ``dami_pref.json``; checkpoints go beside it in ``OUTPUT-checkpoints/``. Hardware
lives in configs/accelerate/, the experiment in configs/.
"""

from __future__ import annotations

import sys

from dami_pref.cli import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("train", argv, prog="train/pref.py")


if __name__ == "__main__":
    sys.exit(main())
