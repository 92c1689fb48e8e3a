"""``dami-pref select``: a λ for every question from a trained ranker (and, optionally, answers)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import ClassVar

from ..utils.options import one_of
from .common import DecodingArgs, EngineArgs, RankerGenerationArgs, follow_ranker


@dataclass
class SelectArgs(RankerGenerationArgs, EngineArgs, DecodingArgs):
    mixed_by_default: ClassVar[tuple[str, ...]] = ("vllm",)  # continuous batching pays
    ranker: str = field(default="", metadata={"help": "ranker folder or Hub id", "required": True})
    question: list[str] | None = field(default=None, metadata={
        "help": "one or more questions: --question Q1 Q2 ..."})
    input: str | None = field(default=None, metadata={
        "help": ".jsonl/.json/.parquet (question field, optional id) or .txt (a question per "
                "line); without --question or --input, questions are read from standard input"})
    question_field: str = field(default="question", metadata={
        "help": "--input's column holding the question"})
    id_field: str = field(default="id", metadata={"help": "--input's column holding the id"})
    grid: str | None = field(default=None, metadata={
        "help": "choose only among these λ (a subset of the ranker's grid), e.g. 0,0.5,1"})
    cost_weight: float | None = field(default=None, metadata={
        "help": "β: choose argmax r(q, λ) − β·ĉ(λ); default: the β chosen on validation when "
                "the ranker was trained (its dami_pref.json operating_point); β > 0 saves "
                "tokens, β < 0 buys accuracy with more thinking"})
    backbone: str | None = field(default=None, metadata={
        "help": "override the ranker's backbone (e.g. a local copy)"})
    output: str | None = field(default=None, metadata={"help": "write JSON lines here"})
    format: str = field(default="auto", metadata={
        **one_of("auto", "jsonl", "table"),
        "help": "auto (a table on a terminal, JSON lines otherwise), jsonl or table"})
    generate: bool = field(default=False, metadata={
        "help": "also answer each question at its λ (with --engine runtime or vllm)"})


def run(args: SelectArgs) -> int:
    from ..data.questions import read_questions
    from ..errors import DamiPrefError
    from ..ranker.inference import LambdaRanker
    from ..utils.io import atomic_write_text, check_output_file

    if not args.ranker:
        raise DamiPrefError("--ranker is required (a ranker folder or Hub id)")
    if args.output:
        check_output_file(args.output)  # before any scoring
    stdin = sys.stdin if not (args.question or args.input) else None
    questions = read_questions(args.question, args.input, stdin, args.question_field,
                               args.id_field)
    ranker = LambdaRanker.from_pretrained(args.ranker, backbone=args.backbone,
                                          device=args.device, dtype=args.ranker_dtype,
                                          trust_remote_code=args.trust_remote_code)
    follow_ranker(args, ranker)  # the pair, prompt settings and budget its rollouts used
    decoding = args.decoding() if args.generate else None
    runtime = args.runtime() if args.generate else None
    if runtime is not None:  # a question too long to answer is refused before any work
        source = "--question" if args.question else args.input or "standard input"
        runtime.check_questions([q.question for q in questions], decoding.max_new_tokens,
                                labels=[f"{source}: question {q.id!r}" for q in questions])
    scores = ranker.score([q.question for q in questions], batch_size=args.batch_size)
    if args.grid:
        scores = restrict_to(ranker, scores, args.grid)
    lams = ranker.select_from_scores(scores, args.cost_weight)
    rows = [{"id": q.id, "question": q.question, "lambda": lam,
             "scores": {f"{g:g}": round(float(s), 6) for g, s in zip(ranker.grid, row)
                        if s != float("-inf")}}
            for q, lam, row in zip(questions, lams, scores.tolist())]
    if args.generate:
        from ..runtime.generation import GenerationRequest

        results = runtime.generate([GenerationRequest(r["question"], r["lambda"]) for r in rows],
                                   decoding, progress=sys.stderr.isatty())
        for row, result in zip(rows, results):
            row.update(answer=result.answer, completion=result.completion,
                       n_tokens=result.n_tokens, finished=result.finished)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.output:
        atomic_write_text(args.output, lines)
        print(f"wrote {len(rows)} line(s) to {args.output}", file=sys.stderr)
    as_table = args.format == "table" or (args.format == "auto" and sys.stdout.isatty()
                                          and not args.output)
    if as_table:
        print(format_table(rows, args.generate))
    elif not args.output:
        sys.stdout.write(lines)
    return 0


def restrict_to(ranker, scores, grid_spec: str):
    """Mask the candidates outside ``grid_spec``, which must be part of the trained grid."""
    from ..errors import DamiPrefError
    from ..utils.grid import Grid

    wanted, trained = Grid.parse(grid_spec), Grid(ranker.grid)
    outside = trained.missing(wanted)
    if outside:
        raise DamiPrefError(f"--grid values {outside} are not in the ranker's grid {ranker.grid}; "
                            "it can only rank the λ values it was trained on")
    keep = [x in wanted for x in ranker.grid]
    masked = scores.clone()
    masked[:, [not k for k in keep]] = float("-inf")
    return masked


def format_table(rows: list[dict], answers: bool) -> str:
    head = "| id | λ | question |" + (" answer | tokens |" if answers else "")
    lines = [head, "|---|---:|---|" + ("---|---:|" if answers else "")]
    for r in rows:
        q = r["question"] if len(r["question"]) <= 60 else r["question"][:57] + "..."
        q = q.replace("|", "\\|").replace("\n", " ")
        line = f"| {r['id']} | {r['lambda']:g} | {q} |"
        if answers:
            line += f" {r['answer']} | {r['n_tokens']} |"
        lines.append(line)
    return "\n".join(lines)
