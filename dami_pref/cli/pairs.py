"""``dami-pref pairs``: (Acc, Cost)-ranked preference pairs from graded rollouts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..utils.limits import PAIRS


@dataclass
class PairsArgs:
    rollouts: str = field(default="outputs/rollouts", metadata={"help": "rollout folder"})
    output: str = field(default="outputs/pairs", metadata={"help": "pairs folder to write"})
    acc_tolerance: float = field(default=0.0, metadata={**PAIRS["acc_tolerance"],
        "help": "accuracy gaps up to this count as ties (0 = any gap decides)"})
    cost_tolerance: float = field(default=0.05, metadata={**PAIRS["cost_tolerance"],
        "help": "at equal accuracy, cost gaps up to this fraction of the dearer cost are ties"})
    validation_fraction: float = field(default=0.1, metadata={**PAIRS["validation_fraction"],
        "help": "share of problems (not pairs) held out for validation"})
    seed: int = field(default=0, metadata={"help": "seeds the train/validation split"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --output"})
    prompt_tokenizer: str | None = field(default="toy", metadata={
        "help": "render TRL's prompt column as the ranker reads it, with this tokenizer (the "
                "ranker's backbone: a folder or Hub id; toy = the bundled toy base; none = the "
                "question and a newline)"})
    prompt_template: str = field(default="{question}", metadata={
        "help": "the ranker's prompt template, for the prompt column"})
    chat_template: bool = field(default=True, metadata={
        "help": "render the prompt column through the tokenizer's chat template"})


def run(args: PairsArgs) -> int:
    from ..data.frontier import format_frontier
    from ..data.pair_dataset import build_pair_dataset
    from ..data.preferences import PairOptions

    from ..data.pair_dataset import PromptRendering
    from ..toy import TOY_BASE

    tokenizer = {"toy": str(TOY_BASE), "none": None}.get(args.prompt_tokenizer or "none",
                                                        args.prompt_tokenizer)
    rendering = PromptRendering(tokenizer, args.prompt_template, args.chat_template)
    summary = build_pair_dataset(args.rollouts, args.output,
                                 PairOptions(args.acc_tolerance, args.cost_tolerance),
                                 rendering=rendering,
                                 validation_fraction=args.validation_fraction, seed=args.seed,
                                 overwrite=args.overwrite)
    print(format_frontier(summary["frontier"]))
    p, n = summary["problems"], summary["pairs"]
    print(f"\nproblems: {p['train']} train, {p['validation']} validation; pairs: {n['train']} "
          f"train, {n['validation']} validation ({summary['pairs_per_problem']:.1f} per problem); "
          f"problems with no signal: {summary['problems_without_signal']}")
    print(f"wrote {args.output} (dataset/, parquet/, candidates.parquet, oracle.parquet, "
          "lambda_star.png, README.md)")
    return 0
