"""The ranker trainer's configuration: what ``train/pref.py`` and ``dami-pref train`` read.

A library object, as TRL's ``RewardConfig`` is: the command line and YAML files fill it in, and
:func:`dami_pref.ranker.training.train` takes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainArgs:
    """Arguments of ``train/pref.py`` (also readable from ``--config FILE.yaml``)."""

    pairs: str = field(default="outputs/toy/pairs", metadata={"help": "pairs folder"})
    output: str = field(default="outputs/toy/ranker", metadata={
        "help": "ranker folder to write; checkpoints go to OUTPUT-checkpoints/"})
    backbone: str | None = field(default=None, metadata={
        "help": "ranker backbone (folder or Hub id); default: the toy base"})
    objective: str = field(default="pref", metadata={
        "help": "pref (DAMI-Pref, pairs), pred (DAMI-Pred, regress λ*), route (DAMI-Routing)"})
    grid: str | None = field(default=None, metadata={
        "help": "expected λ grid; an error if the pairs were built on another"})
    prompt_template: str = "{question}"
    chat_template: bool = field(default=True, metadata={
        "help": "render questions through the backbone's chat template (if it has one)"})
    max_length: int = field(default=512, metadata={
        "help": "longest question in tokens; longer ones keep their last tokens"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "'all-linear' or a comma list such as q_proj,v_proj"})
    head_width: int = 128
    pair_weighting: str = field(default="none", metadata={
        "help": "none, or acc_gap (weight 1 + accuracy gap)"})
    margin: float = 0.0
    learning_rate: float = 1e-3
    head_learning_rate: float | None = field(default=None, metadata={
        "help": "learning rate of the head (default: --learning_rate)"})
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    epochs: float = 3.0
    max_steps: int | None = field(default=None, metadata={"help": "overrides --epochs"})
    batch_size: int = field(default=32, metadata={"help": "problems per process per micro-batch"})
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    eval_batch_size: int = 64
    eval_every: int = field(default=50, metadata={"help": "optimizer steps between evaluations"})
    save_every: int = field(default=100, metadata={"help": "optimizer steps between save_state"})
    keep_checkpoints: int = 2
    max_train_problems: int | None = field(default=None, metadata={
        "help": "train on a seeded random subset of this many training problems"})
    resume: bool = field(default=False, metadata={
        "help": "continue from the newest checkpoint in OUTPUT-checkpoints/"})
    seed: int = 0
    dtype: str = field(default="auto", metadata={"help": "backbone dtype: auto, float32, bfloat16"})
    device: str = field(default="auto", metadata={"help": "auto, or cpu to ignore any GPU"})
    gradient_checkpointing: bool = False
    report_to: str = field(default="stdout", metadata={
        "help": "comma list of trackers: stdout, tensorboard, wandb"})
    trust_remote_code: bool = False
    progress: bool = True
