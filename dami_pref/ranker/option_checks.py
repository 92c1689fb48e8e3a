"""The rules a ranker training option's value must follow, in a leaf module that imports
nothing heavy: the configuration classes apply them when they are built.

Every rule concerns one option, so a value given on the command line can be judged alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import OptionError

OBJECTIVES = ("pref", "acc", "pred", "route")
TARGETS = ("best_static", "max_accuracy", "paper")
PAIR_WEIGHTINGS = ("none", "acc_gap")

# option -> (test, what the value must be), in the order the configuration classes check them:
# the data's, the trainer's, the model's
RULES = {
    "max_train_problems": (lambda v: v is None or v >= 1, "≥ 1"),
    "objective": (lambda v: v in OBJECTIVES, f"one of {list(OBJECTIVES)}"),
    "operating_target": (lambda v: v in TARGETS, f"one of {list(TARGETS)}"),
    "pair_weighting": (lambda v: v in PAIR_WEIGHTINGS, f"one of {list(PAIR_WEIGHTINGS)}"),
    "max_length": (lambda v: v >= 1, "≥ 1"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "margin": (lambda v: v >= 0, "≥ 0"),
    "per_device_train_batch_size": (lambda v: v >= 1, "≥ 1"),
    "per_device_eval_batch_size": (lambda v: v >= 1, "≥ 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, "≥ 1"),
    "num_train_epochs": (lambda v: v > 0, "> 0"),
    "max_steps": (lambda v: v == -1 or v >= 1, "≥ 1, or -1 to train --num_train_epochs"),
    "max_grad_norm": (lambda v: math.isfinite(v), "a number"),
    "head_learning_rate": (lambda v: v is None or v > 0, "> 0"),
    "prompt_template": (lambda v: "{question}" in v, "a text with '{question}' in it"),
    "warmup_ratio": (lambda v: v is None or 0 <= v < 1, "in [0, 1)"),
    "use_peft": (lambda v: v is not False, "true: the ranker trains LoRA adapters and its head "
                                            "(full fine-tuning is not supported)"),
    "load_in_4bit": (lambda v: not v, "false: quantized backbones are not supported"),
    "load_in_8bit": (lambda v: not v, "false: quantized backbones are not supported"),
    "lora_r": (lambda v: v >= 1, "≥ 1"),
    "lora_dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
}


def check_ranker_options(values: Mapping[str, object]) -> None:
    """An OptionError naming the first option in ``values`` whose value breaks its rule;
    options without a rule are left to their parser."""
    for name, (ok, allowed) in RULES.items():
        if name in values and not ok(values[name]):
            raise OptionError(f"--{name} must be {allowed}, got {values[name]!r}")
