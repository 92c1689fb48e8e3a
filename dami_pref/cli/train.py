"""``dami-pref train``: the DAMI-Pref ranker (or the DAMI-Pred / DAMI-Routing baselines).

The arguments are TRL's shape: ``RankerScriptArguments`` (the pairs), ``RankerConfig``
(``transformers.TrainingArguments`` plus the ranker's fields) and ``RankerModelConfig`` (TRL's
``ModelConfig``: backbone and LoRA). This runs in the current process; ``accelerate launch
train/pref.py`` (the same code) runs several, or DeepSpeed.
"""

from __future__ import annotations

from ..ranker.config import ARGUMENT_CLASSES, RankerConfig, RankerModelConfig, \
    RankerScriptArguments

ARGUMENTS = ARGUMENT_CLASSES

__all__ = ["ARGUMENTS", "run"]


def run(args: tuple[RankerScriptArguments, RankerConfig, RankerModelConfig]) -> int:
    from ..ranker.training import train

    script, config, model_args = args
    if not model_args.model_name_or_path:  # the command line's default backbone
        from ..toy import TOY_BASE

        model_args.model_name_or_path = str(TOY_BASE)
    result = train(script, config, model_args)
    if config.process_index != 0:
        return 0
    v = result["validation"]
    print(f"\n{config.objective}: {result['steps']} steps in {result['seconds']:.1f} s "
          f"({result['distributed_type']}, {result['processes']} process(es)); validation "
          f"pairwise accuracy {v['pairwise_accuracy']:.3f}, top-1 agreement with λ* "
          f"{v['top1_agreement']:.3f}, accuracy regret {v['accuracy_regret']:.3f}, token regret "
          f"{v['tokens_regret']:.1f}\nwrote {config.output_dir}")
    return 0
