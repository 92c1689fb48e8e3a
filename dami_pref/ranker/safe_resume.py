"""Resuming without unpickling anything but tensors and plain data.

``Trainer`` reads its own state files (optimizer, scheduler, RNG) with ``weights_only=True``.
DeepSpeed reads its checkpoints with ``weights_only=False``, which would run whatever a crafted
file asks. Before a run resumes, every pickle-format file of the checkpoint is opened with
``weights_only=True`` (torch's restricted unpickler), allowing only the few plain data classes
DeepSpeed stores; while the run resumes under DeepSpeed, its checkpoint engine loads the same
way. A file that needs anything else is refused with a clear error and never runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DamiPrefError, first_line

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle")


def deepspeed_data_classes() -> list[type]:
    """Plain data holders DeepSpeed pickles into its optimizer states (no behaviour on load)."""
    try:
        from deepspeed.runtime.fp16.loss_scaler import LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address
    except ImportError:
        return []
    return [ZeroStageEnum, LossScaler, fragment_address]


@contextmanager
def restricted_unpickling() -> Iterator[None]:
    """``torch.load(weights_only=True)`` accepts numpy RNG states and DeepSpeed's data classes."""
    import torch
    from transformers.trainer_pt_utils import safe_globals

    with safe_globals(), torch.serialization.safe_globals(deepspeed_data_classes()):
        yield


def newest_complete_checkpoint(root: str | Path) -> str | None:
    """The newest ``checkpoint-N`` under ``root`` that holds ``trainer_state.json`` (Trainer
    writes it last). Incomplete ones are named on stderr and skipped; a killed save's
    temporary folder is removed."""
    import re
    import sys

    from ..utils.io import remove_stale_temporaries

    root = Path(root)
    if not root.is_dir():
        return None
    remove_stale_temporaries(root)
    steps = sorted(((int(m[1]), p) for p in root.iterdir()
                    if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))),
                   reverse=True)
    for _, folder in steps:
        if (folder / "trainer_state.json").is_file():
            return str(folder)
        print(f"skipped {folder}: an incomplete checkpoint (no trainer_state.json; its save "
              "was interrupted)", file=sys.stderr)
    return None


def check_checkpoint_files(folder: str | Path) -> None:
    """Open every pickle-format file of a checkpoint with ``weights_only=True``; a file that
    holds anything but tensors and plain data is refused before training resumes, and a
    truncated or corrupt one is called damaged."""
    import pickle

    import torch

    for path in sorted(Path(folder).rglob("*")):
        if path.suffix not in PICKLE_SUFFIXES or not path.is_file():
            continue
        try:
            with restricted_unpickling():
                torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise DamiPrefError(
                f"{path}: refused to resume from it: it is not plain tensor data "
                f"({type(err).__name__}: {first_line(err)}). A checkpoint file that needs full "
                "unpickling could run code; resume only from checkpoints this toolkit "
                "wrote") from None
        except Exception as err:  # noqa: BLE001 - EOFError, zip and stream errors
            raise DamiPrefError(
                f"{path}: the checkpoint is damaged (truncated or corrupt: "
                f"{type(err).__name__}: {first_line(err)}); resume from an earlier one with "
                "--resume_from_checkpoint PATH, or start again with --overwrite_output_dir"
            ) from None


@contextmanager
def deepspeed_loads_weights_only() -> Iterator[None]:
    """While resuming under DeepSpeed, its checkpoint engine loads with ``weights_only=True``."""
    try:
        from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import (
            TorchCheckpointEngine)
    except ImportError:
        yield
        return
    import torch

    original = TorchCheckpointEngine.load

    def load(self, path: str, map_location=None):
        with restricted_unpickling():
            return torch.load(path, map_location=map_location, weights_only=True)

    TorchCheckpointEngine.load = load
    try:
        yield
    finally:
        TorchCheckpointEngine.load = original
