"""The ranker trainer's configuration, in the shape TRL's scripts use.

``TrlParser((RankerScriptArguments, RankerConfig, RankerModelConfig))`` reads a ``--config`` YAML
and command-line flags, as ``trl/scripts/reward.py`` does with ``ScriptArguments``,
``RewardConfig`` and ``ModelConfig``:

- :class:`RankerScriptArguments`: the data (a pairs folder) and how much of it to use;
- :class:`RankerConfig`: ``transformers.TrainingArguments`` (every standard flag:
  ``--per_device_train_batch_size``, ``--bf16``, ``--eval_steps``, ``--save_total_limit``,
  ``--resume_from_checkpoint``, ``--push_to_hub`` …) plus the ranker's own fields;
- :class:`RankerModelConfig`: TRL's ``ModelConfig`` (backbone, dtype, LoRA) with the ranker's
  defaults (LoRA on every linear layer of a backbone without its LM head).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import cached_property

from transformers import TrainingArguments
from trl import ModelConfig

from ..errors import OptionError

from .option_checks import check_ranker_options


@dataclass
class RankerScriptArguments:
    pairs: str = field(default="outputs/toy/pairs", metadata={
        "help": "pairs folder (dami-pref pairs --output)"})
    max_train_problems: int | None = field(default=None, metadata={
        "help": "train on a seeded random subset of this many training problems (≥ 1)"})

    def __post_init__(self) -> None:
        check_ranker_options(own_values(self))


@dataclass
class RankerConfig(TrainingArguments):
    """``TrainingArguments`` with the ranker's fields and defaults suited to it."""

    # -- the ranker's own fields
    objective: str = field(default="pref", metadata={
        "help": "pref (DAMI-Pref as published: pairs), acc (accuracy first: predicted "
                "correctness at every λ), pred (DAMI-Pred, regress λ*), route (DAMI-Routing)"})
    operating_target: str = field(default="best_static", metadata={
        "help": "how the default β is chosen on the validation split when training ends: "
                "best_static (fewest tokens at ≥ the best static λ's accuracy), max_accuracy, "
                "or paper (β = 0)"})
    grid: str | None = field(default=None, metadata={
        "help": "expected λ grid; an error if the pairs were built on another"})
    prompt_template: str = field(default="{question}", metadata={
        "help": "wraps each question before the chat template"})
    chat_template: bool = field(default=True, metadata={
        "help": "render questions through the backbone's chat template (if it has one)"})
    max_length: int = field(default=512, metadata={
        "help": "longest question in tokens (≥ 1); longer ones keep their last tokens"})
    head_learning_rate: float | None = field(default=None, metadata={
        "help": "learning rate of the classifier layer (> 0; default: --learning_rate)"})
    pair_weighting: str = field(default="none", metadata={
        "help": "none, or acc_gap (weight 1 + accuracy gap)"})
    margin: float = field(default=0.0, metadata={"help": "margin of the pairwise loss (≥ 0)"})
    warmup_ratio: float | None = field(default=0.05, metadata={
        "help": "share of the steps spent warming up, in [0, 1) (sets --warmup_steps; the name "
                "TRL and older transformers use)"})
    # -- TrainingArguments defaults that suit the ranker
    output_dir: str | None = field(default="outputs/toy/ranker", metadata={
        "help": "the ranker folder; checkpoints go to OUTPUT_DIR-checkpoints/checkpoint-N/"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "replace an existing ranker or checkpoints in --output_dir"})
    learning_rate: float = field(default=1e-3, metadata={"help": "learning rate (> 0)"})
    per_device_train_batch_size: int = field(default=32, metadata={
        "help": "problems (each with all its pairs) per process per micro-batch"})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "problems per batch"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "scheduler name"})
    eval_strategy: str = field(default="steps", metadata={"help": "no, steps or epoch"})
    eval_steps: float | None = field(default=50, metadata={"help": "steps between evaluations"})
    save_steps: float = field(default=100, metadata={"help": "steps between checkpoints"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept"})
    logging_steps: float = field(default=10, metadata={"help": "steps between logs"})
    seed: int = field(default=0, metadata={"help": "seeds the sampler, LoRA and the score layer"})
    dataloader_drop_last: bool = field(default=True, metadata={
        "help": "drop the last incomplete batch of an epoch"})
    remove_unused_columns: bool = field(default=False, metadata={
        "help": "kept False: the collator reads whole problems"})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={
        "help": "every trained parameter gets a gradient (unused head parts are frozen)"})
    hub_strategy: str = field(default="end", metadata={
        "help": "end: --push_to_hub uploads the finished ranker folder with its model card "
                "(checkpoints, which hold optimizer states, stay local)"})

    def __post_init__(self) -> None:
        check_ranker_options(own_values(self))
        if self.ddp_backend is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch

            if not torch.cuda.is_available():
                # Several processes on a CPU (plain or DeepSpeed): they can only meet over gloo.
                self.ddp_backend = "gloo"
        if self.warmup_ratio is not None and not self.warmup_steps:
            self.warmup_steps = self.warmup_ratio
        super().__post_init__()

    @cached_property
    def _setup_devices(self):
        """Several CPU processes under ``--deepspeed ds.json`` join over gloo before DeepSpeed
        counts them (left to itself it finds no backend, counts one process and fails its
        train_batch_size check)."""
        import torch

        if (self.deepspeed and not torch.cuda.is_available()
                and int(os.environ.get("WORLD_SIZE", "1")) > 1):
            from accelerate import PartialState

            os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
            try:
                PartialState(backend="gloo")  # what TrainingArguments then reuses
            finally:
                del os.environ["ACCELERATE_USE_DEEPSPEED"]
            self.accelerator_config.use_configured_state = True
        return super()._setup_devices

@dataclass
class RankerModelConfig(ModelConfig):
    """TRL's ``ModelConfig`` for the ranker's backbone: LoRA on by default, on every linear layer,
    with peft's sequence-classification task (the ranker is a classifier, one logit per λ)."""

    model_name_or_path: str | None = field(default=None, metadata={
        "help": "the ranker's backbone (folder or Hub id); default: the bundled toy base"})
    dtype: str | None = field(default="auto", metadata={
        "help": "backbone dtype: auto (as stored), float32, bfloat16 or float16",
        "choices": ["auto", "bfloat16", "float16", "float32"]})
    use_peft: bool = field(default=True, metadata={
        "help": "LoRA adapters on the backbone (the ranker always trains them)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (≥ 1)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout, in [0, 1)"})
    lora_target_modules: list[str] | None = field(default_factory=lambda: ["all-linear"],
                                                  metadata={"help": "all-linear, or module names"})
    lora_task_type: str = field(default="SEQ_CLS", metadata={
        "help": "peft task type: SEQ_CLS (the ranker is a sequence classifier, one logit per λ)"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow model code from the backbone's repository to run (off by default)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranker_options(own_values(self))


def own_values(config) -> dict:
    """A configuration's fields by name, for the option rules."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


ARGUMENT_CLASSES = (RankerScriptArguments, RankerConfig, RankerModelConfig)


def ranker_arguments(**values) -> tuple[RankerScriptArguments, RankerConfig, RankerModelConfig]:
    """The three argument objects from one flat set of names, as the command line gives them:
    ``ranker_arguments(pairs=..., output_dir=..., max_steps=6, lora_r=4)``."""
    out = []
    for cls in ARGUMENT_CLASSES:
        names = {f.name for f in fields(cls) if f.init}
        out.append(cls(**{k: v for k, v in values.items() if k in names}))
    known = {f.name for cls in ARGUMENT_CLASSES for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise OptionError(f"unknown training argument(s) {unknown}")
    return tuple(out)  # type: ignore[return-value]
