"""The ``dami-pref`` command: ``dami-pref <command> [--config FILE.yaml] [--option value ...]``.

One subcommand per stage of the pipeline (rollout, pairs, train, eval) and per tool (sweep,
merge, lmc, select, export). Every argument dataclass lives in this package; the library never
imports it. ``data_builders/``, ``train/`` and ``eval/`` hold thin scripts over the same
commands, for ``accelerate launch``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from ..version import __version__
from ..errors import DamiPrefError
from .parsing import parse_args

# command -> (module in dami_pref.cli, its arguments dataclass (or a tuple of them, as TRL's
# scripts take), one-line help), in pipeline order
COMMANDS = {
    "rollout": ("rollout", "RolloutArgs", "roll out every λ of a grid on a problem set (resumable)"),
    "pairs": ("pairs", "PairsArgs", "build (Acc, Cost)-ranked preference pairs from rollouts"),
    "train": ("train", "ARGUMENTS", "train the λ ranker (pref, pred or route) on the pairs"),
    "eval": ("eval", "EvalArgs", "evaluate DAMI-Pref against every baseline, offline and live"),
    "sweep": ("sweep", "SweepArgs", "run every λ of a grid over a problem set; table, JSON, plot"),
    "merge": ("merge", "MergeArgs", "write the static model at one λ as a Hugging Face folder"),
    "lmc": ("lmc", "LmcArgs", "per-layer cosine similarity of the Instruct/Thinking pair"),
    "select": ("select", "SelectArgs", "choose λ per question with a trained ranker"),
    "export": ("export", "ExportArgs", "write a Hub-ready ranker folder (and --push it)"),
    "serve": ("serve", "ServeArgs", "an OpenAI-compatible endpoint: λ per request by the ranker"),
    "toy": ("toy", "ToyArgs", "rebuild the bundled toy pair and its problem sets, then check it"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: dami-pref <command> [options]   (dami-pref {__version__})", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text) in COMMANDS.items()]
    lines += ["", "Run `dami-pref <command> --help` for a command's options; every command "
              "also reads --config FILE.yaml."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"dami-pref: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return run_command(name, argv[1:])


def run_command(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` for one command and run it: a clear one-line error and status 2 on bad
    input. The scripts in data_builders/, train/ and eval/ call this with their own name."""
    module_name, class_name, text = COMMANDS[name]
    prog = prog or f"dami-pref {name}"
    argv = list(sys.argv[1:] if argv is None else argv)
    module = importlib.import_module(f".{module_name}", __package__)
    import warnings

    # deprecation notices from inside the libraries are for their maintainers, not our users
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = None  # known once parsed; a disk error names its output
    try:
        args = parse_args(getattr(module, class_name), argv, prog=prog, description=text)
        quiet_libraries()
        status = int(module.run(args) or 0)
        finish(wait=True)
        return status
    except DamiPrefError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        finish(wait=False)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - only disk faults are reported here
        message = disk_error(err, args)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        finish(wait=False)
        return 2


def quiet_libraries() -> None:
    """After parsing (so --help stays quick): our own progress bars say what is happening, and
    DeepSpeed is told it runs on the CPU where there is no GPU, instead of warning about it on
    every import."""
    import os

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"


def finish(wait: bool) -> None:
    """Close vLLM engines, then leave the process group; nothing to do (and nothing heavy to
    import) when the command never loaded torch."""
    if "torch" not in sys.modules:
        return
    from ..runtime.vllm_engine import close_engines
    from ..utils.devices import end_distributed

    close_engines()
    end_distributed(wait=wait)


def disk_error(err: BaseException, args) -> str | None:
    """One line for a full or failing disk, naming where the output was going; None for any
    other error (which is a bug, and keeps its traceback)."""
    from ..utils.disk import disk_failure, failed_path

    what = disk_failure(err)
    if what is None:
        return None
    groups = args if isinstance(args, tuple) else (args,)  # train takes TRL-style groups
    where = failed_path(err) or next((str(getattr(group, name)) for group in groups
                                      for name in ("output", "output_dir")
                                      if getattr(group, name, None)), "the output")
    return (f"{where}: writing failed: {what}. Nothing half-written was kept and earlier "
            "outputs are unchanged; free some space (or fix the disk) and run again")

if __name__ == "__main__":
    sys.exit(main())
