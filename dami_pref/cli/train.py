"""``dami-pref train``: the DAMI-Pref ranker (or the DAMI-Pred / DAMI-Routing baselines).

Runs in this process; for several processes or DeepSpeed use ``accelerate launch`` with
``train/pref.py`` (the same code) and a config from ``configs/accelerate/``.
"""

from __future__ import annotations

from ..ranker.config import TrainArgs

__all__ = ["TrainArgs", "run"]


def run(args: TrainArgs) -> int:
    from accelerate import PartialState

    from ..ranker.training import train

    result = train(args)
    if not PartialState().is_main_process:
        return 0
    v = result["validation"]
    print(f"\n{args.objective}: {result['steps']} steps in {result['seconds']:.1f} s "
          f"({result['distributed_type']}, {result['processes']} process(es)); validation "
          f"pairwise accuracy {v['pairwise_accuracy']:.3f}, top-1 agreement with λ* "
          f"{v['top1_agreement']:.3f}, accuracy regret {v['accuracy_regret']:.3f}, token regret "
          f"{v['tokens_regret']:.1f}\nwrote {args.output}")
    return 0
