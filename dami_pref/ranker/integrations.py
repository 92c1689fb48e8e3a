"""``--report_to``: every integration's package is there before training starts, and logs are
written outside the ranker folder (which the end of training swaps in whole, so anything written
inside it during the run would be lost).

TensorBoard writes to ``TENSORBOARD_LOGGING_DIR`` when the user sets it; otherwise to
``OUTPUT_DIR-runs/DATE_HOST`` beside ``OUTPUT_DIR-checkpoints/``. The other integrations log to
their own servers or to folders of the working directory.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DamiPrefError

# --report_to name -> (modules any one of which serves it, what to pip install)
PACKAGES = {"tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
            "wandb": (("wandb",), "wandb"), "mlflow": (("mlflow",), "mlflow"),
            "comet_ml": (("comet_ml",), "comet_ml"), "clearml": (("clearml",), "clearml"),
            "trackio": (("trackio",), "trackio"), "swanlab": (("swanlab",), "swanlab"),
            "neptune": (("neptune",), "neptune"), "dvclive": (("dvclive",), "dvclive"),
            "codecarbon": (("codecarbon",), "codecarbon")}


def check_integrations(report_to: list[str] | str | None) -> None:
    """A one-line error naming what to install, before any model is loaded."""
    for name in [report_to] if isinstance(report_to, str) else (report_to or []):
        modules, package = PACKAGES.get(name, ((), None))
        if package and not any(importlib.util.find_spec(m) for m in modules):
            raise DamiPrefError(f"--report_to {name} needs the {package} package: "
                                f"pip install {package} (or drop {name} from --report_to)")


@contextmanager
def tensorboard_logs(output_dir: str | Path, report_to: list[str] | str | None,
                     announce: bool = True) -> Iterator[Path | None]:
    """While training: ``TENSORBOARD_LOGGING_DIR`` (the user's, or ``OUTPUT_DIR-runs/DATE_HOST``),
    which Trainer's TensorBoard callback reads; restored afterwards."""
    names = [report_to] if isinstance(report_to, str) else (report_to or [])
    if "tensorboard" not in names:
        yield None
        return
    before = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if not before:
        from transformers.integrations.integration_utils import default_logdir

        output_dir = Path(output_dir)
        runs = output_dir.with_name(output_dir.name + "-runs") / Path(default_logdir()).name
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(runs)
    logs = Path(os.path.expanduser(os.environ["TENSORBOARD_LOGGING_DIR"]))
    if announce:
        print(f"TensorBoard logs: {logs}", file=sys.stderr)
    try:
        yield logs
    finally:
        if not before:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
