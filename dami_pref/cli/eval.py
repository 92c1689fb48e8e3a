"""``dami-pref eval``: DAMI-Pref against every baseline on a test set, offline and live."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar
from pathlib import Path

from ..errors import DamiPrefError
from ..utils.options import at_least
from .common import DecodingArgs, EngineArgs, pair_identity_of


@dataclass
class EvalArgs(EngineArgs, DecodingArgs):
    """Arguments of ``dami-pref eval`` and ``eval/run.py`` (also from ``--config FILE.yaml``)."""
    mixed_by_default: ClassVar[tuple[str, ...]] = ("vllm",)  # continuous batching pays

    output: str = field(default="outputs/toy/eval", metadata={"help": "results folder"})
    test_problems: str | None = field(default=None, metadata={
        "help": "test problems (any source the data builders accept); default: the toy test set"})
    test_split: str | None = field(default=None, metadata={
        "help": "split of a Hub/datasets test source"})
    validation_problems: str | None = field(default=None, metadata={
        "help": "validation problems (best static λ, DAMI-Conf calibration); default: toy"})
    validation_split: str | None = field(default=None, metadata={
        "help": "split of a Hub/datasets validation source"})
    preset: str = field(default="default", metadata={
        "help": "column preset of the test set: default, gsm8k, math, math500 or aime"})
    question_field: str | None = field(default=None, metadata={
        "help": "question column of the test set (overrides the preset)"})
    answer_field: str | None = field(default=None, metadata={
        "help": "gold-answer column of the test set (overrides the preset)"})
    id_field: str | None = field(default=None, metadata={
        "help": "id column of the test set (overrides the preset)"})
    validation_preset: str | None = field(default=None, metadata={
        "help": "column preset of the validation set, when it comes from another dataset "
                "(default: the test set's preset and fields)"})
    limit: int | None = field(default=None, metadata={**at_least(1),
        "help": "test problems to use"})
    validation_limit: int | None = field(default=None, metadata={**at_least(1),
        "help": "validation problems to use (default: all)"})
    test_rollouts: str | None = field(default=None, metadata={
        "help": "finished rollout folder of the test problems, used as it is (default: made "
                "under OUTPUT/rollouts_test)"})
    validation_rollouts: str | None = field(default=None, metadata={
        "help": "finished rollout folder of the validation problems (default: made under "
                "OUTPUT/rollouts_validation)"})
    grid: str = field(default="0:1:0.1", metadata={
        "help": "candidate λ values: start:stop:step (stop included) or a comma list; the "
                "rankers' grid must match"})
    methods: str = field(default="all", metadata={
        "help": "comma list of static, instruct, thinking, best_static, dami_pref, "
                "dami_pref_paper, dami_pred, "
                "dami_routing, dami_conf, oracle; or all"})
    dami_pref_ranker: str | None = field(default=None, metadata={
        "help": "the DAMI-Pref ranker (objective acc or pref), used at its validation-chosen β"})
    dami_pref_paper_ranker: str | None = field(default=None, metadata={
        "help": "a ranker trained with --objective pref, used at β = 0 as the paper does"})
    dami_pred_ranker: str | None = field(default=None, metadata={
        "help": "a ranker trained with --objective pred (DAMI-Pred baseline)"})
    dami_routing_ranker: str | None = field(default=None, metadata={
        "help": "a ranker trained with --objective route (DAMI-Routing baseline: Instruct "
                "or Thinking)"})
    modes: str = field(default="offline,live", metadata={"help": "offline, live, or both"})
    live_limit: int | None = field(default=None, metadata={**at_least(1),
        "help": "test questions generated in live mode (default: all)"})
    live_batch_size: int | None = field(default=None, metadata={**at_least(1),
        "help": "batch size of live generation (default: --batch_size); 1 serves questions one "
                "by one, where a question's tokens set its latency"})
    cost_weights: str = field(default="auto", metadata={
        "help": "β values of the DAMI-Pref cost-knob table (negative: more thinking); auto: "
                "suited to each ranker's objective, with its validation-chosen β"})
    conf_answer_tokens: int = field(default=8, metadata={**at_least(1),
        "help": "DAMI-Conf: tokens of the direct answer whose confidence is measured"})
    conf_think_skip: str = field(default="<think></think>", metadata={
        "help": "DAMI-Conf: the text that closes an empty thinking span before the direct answer"})
    seed: int = field(default=0, metadata={
        "help": "seeds the rollouts the harness makes (as rollout --seed)"})
    progress: bool = field(default=True, metadata={
        "help": "progress bars on standard error"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace earlier results in --output (its rollouts are reused either way)"})

    def settings(self):
        """The library's view of these arguments, every string parsed."""
        from ..evaluation.harness import EvalSettings
        from ..evaluation.methods import parse_methods
        from ..utils.grid import parse_grid

        modes = frozenset(m.strip() for m in self.modes.split(",") if m.strip())
        try:
            betas = [] if self.cost_weights.strip() == "auto" else [
                float(x) for x in self.cost_weights.split(",") if x.strip()]
        except ValueError:
            betas = [float("nan")]
        if any(b != b for b in betas):
            raise DamiPrefError(f"--cost_weights must be numbers, got {self.cost_weights!r}")
        methods = parse_methods(self.methods)
        if self.methods.strip() == "all" and not self.dami_pref_paper_ranker:
            methods.remove("dami_pref_paper")  # an optional row: only with its ranker
        return EvalSettings(
            grid=parse_grid(self.grid), methods=methods,
            output=Path(self.output), modes=modes, cost_weights=betas,
            rankers={"dami_pref": self.dami_pref_ranker,
                     "dami_pref_paper": self.dami_pref_paper_ranker,
                     "dami_pred": self.dami_pred_ranker,
                     "dami_routing": self.dami_routing_ranker},
            batch_size=self.batch_size, seed=self.seed, live_limit=self.live_limit,
            live_batch_size=self.live_batch_size, conf_answer_tokens=self.conf_answer_tokens,
            conf_think_skip=self.conf_think_skip, test_rollouts=self.test_rollouts,
            validation_rollouts=self.validation_rollouts, progress=self.progress,
            config=asdict(self))

    def problems(self, which: str):
        """The ``test`` or ``validation`` problems, columns mapped."""
        from ..data.problems import field_map, load_problems
        from ..toy import toy_problems_path

        source, split, limit = self._source(which)
        if which == "validation" and self.validation_preset:
            fields = field_map(self.validation_preset)
        else:
            fields = field_map(self.preset, question=self.question_field,
                               answer=self.answer_field, id=self.id_field)
        return load_problems(source or toy_problems_path(which), fields=fields, split=split,
                             limit=limit)

    def _source(self, which: str) -> tuple[str | None, str | None, int | None]:
        if which == "test":
            return self.test_problems, self.test_split, self.limit
        return self.validation_problems, self.validation_split, self.validation_limit

    def describe_problems(self, which: str, problems) -> dict:
        """Where a problem set came from and a hash of what was read (ids, questions, golds)."""
        from ..data.rollouts import problems_fingerprint, problems_sha256
        from ..utils.portable import portable
        from ..toy import toy_problems_path

        source, split, limit = self._source(which)
        preset = self.validation_preset if which == "validation" and self.validation_preset \
            else self.preset
        return {"source": source or portable(toy_problems_path(which)), "split": split,
                "preset": preset, "limit": limit, "problems": len(problems),
                "sha256": problems_sha256(problems), "fingerprint": problems_fingerprint(problems)}


def evaluate(args: EvalArgs) -> dict:
    """Run the evaluation these arguments describe; returns the results (with the table)."""
    from ..evaluation.harness import run_evaluation
    from ..evaluation.provenance import describe_model, now
    from ..utils.digest import text_sha256

    from ..utils.io import check_results_folder

    settings = args.settings()
    check_results_folder(args.output, "results.json", args.overwrite)
    settings.started = now()
    settings.check()  # rankers, grid and objectives: fail before any model loads
    test, validation = args.problems("test"), args.problems("validation")
    runtime = args.runtime()
    decoding = args.decoding()
    runtime.check_questions([p.question for p in (*test, *validation)],
                            decoding.max_new_tokens,  # before any rollout folder exists
                            labels=[f"{split} problem {p.id!r}" for split, part in
                                    (("test", test), ("validation", validation)) for p in part])
    pair = pair_identity_of(args, runtime.instruct_path, runtime.thinking_path)
    settings.models = {
        side: describe_model(given, path, pair[side])
        for side, given, path in (("instruct", args.instruct, runtime.instruct_path),
                                  ("thinking", args.thinking, runtime.thinking_path))}
    settings.models.update(dtype=args.dtype, memory_mode=args.memory_mode,
                           prompt_template=args.prompt_template,
                           chat_template_from=args.chat_template_from,
                           chat_template_sha256=text_sha256(runtime.tokenizer.chat_template))
    settings.data = {"test": args.describe_problems("test", test),
                     "validation": args.describe_problems("validation", validation)}
    return run_evaluation(settings, runtime, test, validation, decoding, pair)


def run(args: EvalArgs) -> int:
    results = evaluate(args)
    print(results["table"])
    extra = []
    if "routing_roc_auc" in results:
        extra.append(f"DAMI-Routing ROC-AUC {results['routing_roc_auc']:.3f}")
    if "dami_conf" in results and "roc_auc" in results["dami_conf"]:
        extra.append(f"DAMI-Conf signal ROC-AUC {results['dami_conf']['roc_auc']:.3f}")
    if extra:
        print("\n" + "; ".join(extra) + " (against 'Instruct answers wrongly' on the test "
              "problems)")
    if results["cost_knob"]:
        print("\ncost knob β (DAMI-Pref): " + ", ".join(
            f"β={r['beta']:g}: {100 * r['accuracy']:.1f}% at {r['mean_tokens']:.1f} tokens"
            for r in results["cost_knob"]))
    out = results["config"]["output"]
    print(f"\nwrote {out}/results.json and {out}/results.md; plots: "
          + ", ".join(results["plots"].values()))
    return 0
