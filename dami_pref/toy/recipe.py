"""What ``dami-pref toy`` builds: the seeded recipe of the bundled pair (problem sets, base,
fine-tunes), kept apart from the builder so the command's --help loads no torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..utils.options import at_least, between
from . import task as toy_task


@dataclass
class ToyRecipe:
    seed: int = field(default=0, metadata={
        "help": "seeds the problem sets, the pretraining and both fine-tunes"})
    threads: int = field(default=1, metadata={**at_least(1),
        "help": "torch CPU threads (part of the seed: the committed pair was built with 1)"})
    n_train: int = field(default=1500, metadata={**at_least(1),
        "help": "training questions"})
    n_validation: int = field(default=500, metadata={**at_least(1),
        "help": "validation questions"})
    n_test: int = field(default=900, metadata={**at_least(1),
        "help": "test questions, stratified by (k, share of two-digit operands)"})
    k_decay: float = field(default=toy_task.K_DECAY, metadata={**at_least(0),
        "help": "P(k) ∝ k^-k_decay over the operand counts"})
    hidden_size: int = field(default=128, metadata={**at_least(1),
        "help": "the base model's hidden size"})
    num_layers: int = field(default=4, metadata={**at_least(1),
        "help": "the base model's decoder layers"})
    intermediate_size: int = field(default=384, metadata={**at_least(1),
        "help": "the base model's MLP width"})
    batch_size: int = field(default=32, metadata={**at_least(1), "help": "pretraining batch size"})
    pretrain_steps: int = field(default=2400, metadata={**at_least(1),
        "help": "pretraining steps of the base"})
    pretrain_lr: float = field(default=2e-3, metadata={**at_least(0, included=False),
        "help": "pretraining learning rate"})
    worked_share_min: float = field(default=0.1, metadata={**between(0, 1),
        "help": "share of worked solutions in pretraining on the easiest-looking questions"})
    worked_share_max: float = field(default=0.9, metadata={**between(0, 1),
        "help": "… and on the hardest"})
    size_weight: float = field(default=0.5, metadata={**between(0, 1),
        "help": "weight of the share of two-digit operands (against k) in how hard a "
                "question looks"})
    verify_share: float = field(default=0.15, metadata={**between(0, 1),
        "help": "share of the base's worked solutions that are verified, on questions that "
                "ask for it"})
    thinking_verify_share: float = field(default=0.6, metadata={**between(0, 1),
        "help": "share of the Thinking fine-tune's solutions that are verified"})
    fine_tune_batch_size: int = field(default=64, metadata={**at_least(1),
        "help": "batch size of both fine-tunes"})
    instruct_steps: int = field(default=45, metadata={**at_least(0),
        "help": "steps of the Instruct fine-tune (direct answers)"})
    thinking_steps: int = field(default=150, metadata={**at_least(0),
        "help": "steps of the Thinking fine-tune (worked, often verified, traces)"})
    instruct_lr: float = field(default=1e-4, metadata={**at_least(0, included=False),
        "help": "learning rate of the Instruct fine-tune"})
    thinking_lr: float = field(default=3e-4, metadata={**at_least(0, included=False),
        "help": "learning rate of the Thinking fine-tune"})
    base: str | None = field(default=None, metadata={
        "help": "start from this pretrained base folder instead of pretraining one"})
