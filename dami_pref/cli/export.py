"""``dami-pref export``: a Hub-ready ranker folder with a model card (and ``--push``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportArgs:
    ranker: str = field(metadata={"help": "trained ranker folder"})
    out: str = field(metadata={"help": "folder to write"})
    repo_id: str | None = field(default=None, metadata={"help": "USER/NAME on the Hub"})
    push: bool = field(default=False, metadata={"help": "upload to --repo_id after writing"})
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    license: str = "apache-2.0"
    evaluation: str | None = field(default=None, metadata={
        "help": "results JSON of dami-pref eval to put in the model card"})
    overwrite: bool = False


def run(args: ExportArgs) -> int:
    from ..ranker.export import export_ranker

    out = export_ranker(args.ranker, args.out, repo_id=args.repo_id, push=args.push,
                        private=args.private, license=args.license,
                        evaluation=args.evaluation, overwrite=args.overwrite)
    print(f"wrote {out}" + (f" and uploaded it to {args.repo_id}" if args.push else ""))
    return 0
