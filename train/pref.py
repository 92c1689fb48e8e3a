"""Train the DAMI-Pref ranker (or the DAMI-Pred / DAMI-Routing baselines) on preference pairs.

    accelerate launch train/pref.py --config configs/toy.yaml                  # CPU, minutes
    accelerate launch --config_file configs/accelerate/cpu.yaml --num_processes 2 \\
        train/pref.py --config configs/toy.yaml                                # 2 CPU processes
    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml \\
        train/pref.py --config configs/toy.yaml                                # DeepSpeed ZeRO-2
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml --num_processes 8 \\
        train/pref.py --config configs/qwen3_4b.yaml                           # GPU node
    accelerate launch train/pref.py --config configs/toy.yaml --objective pred --output outputs/toy/pred
    accelerate launch train/pref.py --config configs/toy.yaml --resume         # after a stop

Reads a pairs folder (data_builders/pairs.py) and writes a ranker folder: the LoRA adapter,
``head.safetensors``, the tokenizer and ``dami_pref.json``; ``save_state`` checkpoints go beside
it in ``OUTPUT-checkpoints/``. Hardware lives in configs/accelerate/, the experiment in configs/.
"""

from __future__ import annotations

import sys

from dami_pref.arguments import parse_args
from dami_pref.errors import DamiPrefError
from dami_pref.ranker.training import TrainArgs, train


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(TrainArgs, argv, prog="train/pref.py", description=__doc__)
        result = train(args)
    except DamiPrefError as err:
        print(f"train/pref.py: error: {err}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return 0
    v = result["validation"]
    print(f"\n{args.objective}: {result['steps']} steps in {result['seconds']:.1f} s "
          f"({result['distributed_type']}, {result['processes']} process(es)); validation "
          f"pairwise accuracy {v['pairwise_accuracy']:.3f}, top-1 agreement with λ* "
          f"{v['top1_agreement']:.3f}, accuracy regret {v['accuracy_regret']:.3f}, token regret "
          f"{v['tokens_regret']:.1f}\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
