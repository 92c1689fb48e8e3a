"""``dami-pref export``: a Hub-ready ranker folder with a model card (and ``--push``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportArgs:
    ranker: str = field(metadata={"help": "trained ranker folder"})
    output: str = field(metadata={"aliases": ["--out"], "help": "folder to write"})
    repo_id: str | None = field(default=None, metadata={"help": "USER/NAME on the Hub"})
    push: bool = field(default=False, metadata={"help": "upload to --repo_id after writing"})
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    license: str = field(default="apache-2.0", metadata={
        "help": "the card's license (a Hub license id)"})
    evaluation: str | None = field(default=None, metadata={
        "help": "results.json of dami-pref eval: the card's model-index and evaluation table"})
    base_model_id: str | None = field(default=None, metadata={
        "help": "the Hub id of a backbone the ranker was trained from a local copy of; "
                "without it a local backbone is copied into the export as base/"})
    dataset_id: str | None = field(default=None, metadata={
        "help": "the Hub id of the pairs dataset, for the card's datasets field"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --output"})


def run(args: ExportArgs) -> int:
    from ..ranker.export import export_ranker

    out = export_ranker(args.ranker, args.output, repo_id=args.repo_id, push=args.push,
                        private=args.private, license=args.license,
                        evaluation=args.evaluation, overwrite=args.overwrite,
                        base_model_id=args.base_model_id, dataset_id=args.dataset_id)
    print(f"wrote {out}" + (f" and uploaded it to {args.repo_id}" if args.push else ""))
    return 0
