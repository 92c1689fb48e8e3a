"""``RankerTrainer``: a ``transformers.Trainer`` for the ranker (a sequence classifier).

Everything a TRL user knows comes from ``Trainer``: the flags, mixed precision, gradient
accumulation, the scheduler, checkpoint rotation, ``resume_from_checkpoint``, the logging
integrations (``--report_to``), DeepSpeed and ``push_to_hub``. What the ranker adds is only:

- the loss (:mod:`.losses`: pairwise BCE, λ* regression or routing), computed per problem;
- the evaluation metrics (pairwise accuracy, top-1 agreement with λ*, accuracy and token
  regret), reduced across processes as sums;
- two learning rates (LoRA and the classifier layer) and the ranker folder as the saved format
  (the adapter with its score layer, tokenizer, ``dami_pref.json``), which checkpoints use too, so resuming
  reads safetensors and JSON, and Trainer's own state files only with ``weights_only=True``;
- checkpoints in ``OUTPUT_DIR-checkpoints/``, so the ranker folder itself stays clean.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import Trainer

from ..errors import DamiPrefError
from ..utils.faults import crash_point
from ..utils.tensors import non_finite
from .data import ProblemExample, RankerCollator
from .losses import correctness_bce, pairwise_bce, pred_mse, route_bce
from .metrics import SUMS, batch_sums, finish
from .selection import grid_scores
from .model import RankerSpec


def batch_loss(model, batch: dict[str, torch.Tensor], objective: str,
               margin: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if objective == "pref":
        p = batch["pair_problem"]
        scores = outputs["scores"]
        loss = pairwise_bce(scores[p, batch["pair_chosen"]], scores[p, batch["pair_rejected"]],
                            p, scores.shape[0], margin=margin, weights=batch["pair_weight"])
    elif objective == "acc":
        loss = correctness_bce(outputs["scores"], batch["acc"])
    elif objective == "pred":
        loss = pred_mse(outputs["pred"], batch["oracle_lambda"])
    else:  # route: to Thinking when Instruct (the lowest λ, column 0) answers wrongly
        loss = route_bce(outputs["route"], 1.0 - batch["acc"][:, 0])
    return loss, outputs


def eval_batches(n_examples: int, rank: int, world: int, batch_size: int) -> list[list[int]]:
    """This process's evaluation batches: every world-th example, and as many batches as
    every other process, padded with empty batches.

    Under ZeRO-3 each forward pass gathers parameters from every process, so a process that ran
    out of batches early would leave the others waiting for ever.
    """
    mine = list(range(rank, n_examples, world))
    longest = -(-n_examples // world) if n_examples else 0
    steps = -(-longest // batch_size)
    return [mine[s * batch_size:(s + 1) * batch_size] for s in range(steps)]


def checkpoint_root(output_dir: str | Path) -> Path:
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + "-checkpoints")


class RankerTrainer(Trainer):
    """``Trainer`` over problems (each with all its pairs) and a :class:`RankerModel`."""

    def __init__(self, model, args, *, spec: RankerSpec, train_dataset: list[ProblemExample],
                 eval_dataset: list[ProblemExample], collator: RankerCollator, tokenizer,
                 lambda_costs: dict | None = None, callbacks=None) -> None:
        self.spec = spec
        self.lambda_costs = lambda_costs or {}
        self.training_summary: dict = {}
        self.operating_point: dict | None = None  # chosen on validation when training ends
        super().__init__(model=model, args=args, data_collator=collator,
                         train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=tokenizer, callbacks=callbacks)

    # -- loss ------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = batch_loss(model, inputs, self.args.objective, self.args.margin)
        self._stop_if_not_finite(loss)
        return (loss, outputs) if return_outputs else loss

    def _stop_if_not_finite(self, loss: torch.Tensor) -> None:
        """One all-reduce per micro-batch, so every process stops together (no hang)."""
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, "sum")
        if bad.item() > 0:
            last = self._last_checkpoint()
            raise DamiPrefError(
                f"the loss became non-finite at step {self.state.global_step + 1}; training "
                f"stopped. The last good checkpoint is {last or 'none (none was saved yet)'}; "
                "lower --learning_rate and run again (with --resume_from_checkpoint to continue "
                "from it)")

    def _last_checkpoint(self) -> str | None:
        from .safe_resume import newest_complete_checkpoint

        return newest_complete_checkpoint(checkpoint_root(self.args.output_dir))

    # -- optimizer: LoRA and the classifier layer at their own learning rates -------------
    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = model or self.model
            head = model.head_parameters()
            head_ids = {id(p) for p in head}
            lora = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
            self.optimizer = torch.optim.AdamW(
                [{"params": lora, "lr": self.args.learning_rate},
                 {"params": head, "lr": self.args.head_learning_rate or self.args.learning_rate}],
                weight_decay=self.args.weight_decay)
        return self.optimizer

    # -- evaluation: the selection metrics, reduced as sums -------------------------------
    @torch.no_grad()
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        examples = self.eval_dataset if eval_dataset is None else eval_dataset
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in self.ranker_metrics(examples).items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control,
                                                         metrics)
        return metrics

    def _evaluation_passes(self, examples: list[ProblemExample]):
        """(indices, outputs, batch) of this process's share of ``examples``, every world-th
        one, in eval mode. An empty share still runs a forward pass (on the first example),
        so that every process takes part in the same collective calls (ZeRO-3 gathers
        parameters in each); its indices are empty and its result is not to be counted."""
        accelerator = self.accelerator
        model = self.model_wrapped if self.is_deepspeed_enabled else self.model
        was_training = model.training
        model.eval()
        try:
            for indices in eval_batches(len(examples), accelerator.process_index,
                                        accelerator.num_processes,
                                        self.args.per_device_eval_batch_size):
                chosen = [examples[i] for i in indices] or examples[:1]
                batch = self._prepare_inputs(self.data_collator(chosen))
                with self.compute_loss_context_manager():
                    outputs = model(input_ids=batch["input_ids"],
                                    attention_mask=batch["attention_mask"])
                yield indices, outputs, batch
        finally:
            model.train(was_training)

    def _summed(self, values: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes > 1:
            values = self.accelerator.reduce(values, reduction="sum")
        return values.cpu()

    def ranker_metrics(self, examples: list[ProblemExample]) -> dict[str, float]:
        """Each process scores every world-th problem; the sums are reduced, then divided."""
        grid = self.model.grid.to(self.accelerator.device)
        sums = torch.zeros(len(SUMS), device=self.accelerator.device)
        for indices, outputs, batch in self._evaluation_passes(examples):
            if indices:
                sums += batch_sums(outputs, batch, self.args.objective, grid)
        return finish(self._summed(sums))

    @torch.no_grad()
    def validation_scores(self, examples: list[ProblemExample]) -> torch.Tensor:
        """Selection scores [problems × grid] of every example, each process scoring every
        world-th one, then summed (each row is filled by one process)."""
        grid = self.model.grid.to(self.accelerator.device)
        scores = torch.zeros(len(examples), len(grid), device=self.accelerator.device)
        for indices, outputs, _ in self._evaluation_passes(examples):
            if indices:
                scores[indices] = grid_scores(outputs, self.args.objective, grid).float()
        return self._summed(scores)

    # -- saving: the ranker folder, for checkpoints and the final model alike --------------
    def _get_output_dir(self, trial) -> str:
        staging = getattr(self, "_staging", None)
        return str(staging or checkpoint_root(self.args.output_dir))

    def _save_checkpoint(self, model, trial) -> None:
        """Trainer's checkpoint, written inside a temporary folder and renamed into
        ``checkpoint-N`` when whole: a kill mid-save leaves nothing that looks complete."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        root = checkpoint_root(self.args.output_dir)
        final = root / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self._staging = self._staging_folder(final)
        try:
            super()._save_checkpoint(model, trial)
        except BaseException:
            shutil.rmtree(self._staging, ignore_errors=True)  # e.g. a full disk: keep no part
            raise
        finally:
            staging, self._staging = self._staging, None
        self.accelerator.wait_for_everyone()  # every process wrote its part (RNG, shards)
        if self.args.should_save:
            promote_checkpoint(staging / final.name, final)
            crash_point("checkpoint-saved")
            if str(self.state.best_model_checkpoint or "").startswith(str(staging)):
                self.state.best_model_checkpoint = str(final)
            rotate_checkpoints(output_dir=str(root), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint,
                               use_mtime=True)
        self.accelerator.wait_for_everyone()

    def _staging_folder(self, final: Path) -> Path:
        """The same temporary folder on every process, named with the main process's PID."""
        from accelerate.utils import broadcast_object_list

        from ..utils.io import temporary_sibling

        name = [temporary_sibling(final).name]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(name, from_process=0)
        return final.parent / name[0]

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        from .checkpoint import save_ranker

        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        state = state_dict if state_dict else self.accelerator.get_state_dict(self.model)
        bad = non_finite(state.items())
        if bad:
            raise DamiPrefError(
                f"the weights became non-finite by step {self.state.global_step} ({len(bad)} "
                f"tensor(s), e.g. {bad[0]}); training stopped without writing {output_dir}. The "
                f"last good checkpoint is {self._last_checkpoint() or 'none (none was saved yet)'}"
                "; lower --learning_rate and run again")
        save_ranker(output_dir, self.model, self.processing_class, self.spec,
                    training=self.training_summary, lambda_costs=self.lambda_costs,
                    state_dict=state, operating_point=self.operating_point)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """The adapter (and its score layer) from a checkpoint's files: safetensors only."""
        from .checkpoint import load_weights_into

        load_weights_into(model or self.model, resume_from_checkpoint)

    def create_model_card(self, *args, **kwargs) -> None:
        """The ranker's own card (``README.md``), written whenever the folder is pushed."""
        from ..utils.io import atomic_write_text
        from .card import model_card
        from .checkpoint import read_ranker_config
        from .checkpoint import hub_backbone

        if not self.is_world_process_zero():
            return
        config = read_ranker_config(self.args.output_dir)
        atomic_write_text(Path(self.args.output_dir) / "README.md",
                          model_card(config, self.args.hub_model_id, "apache-2.0",
                                     base_model=hub_backbone(config["backbone"])))


def promote_checkpoint(staged: Path, final: Path) -> None:
    """Rename a finished checkpoint into place (replacing one of the same step) and drop the
    temporary folder around it."""
    from ..utils.io import replace_folder

    replace_folder(staged, final)
    shutil.rmtree(staged.parent, ignore_errors=True)


