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

from ..errors import DamiPrefError

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


def check_checkpoint_files(folder: str | Path) -> None:
    """Open every pickle-format file of a checkpoint with ``weights_only=True``; a file that
    holds anything but tensors and plain data is refused before training resumes."""
    import torch

    for path in sorted(Path(folder).rglob("*")):
        if path.suffix not in PICKLE_SUFFIXES or not path.is_file():
            continue
        try:
            with restricted_unpickling():
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - UnpicklingError and its relatives
            raise DamiPrefError(
                f"{path}: refused to resume from it: it is not plain tensor data "
                f"({type(err).__name__}: {str(err).splitlines()[0][:160]}). A checkpoint file "
                "that needs full unpickling could run code; resume only from checkpoints this "
                "toolkit wrote") from None


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
