"""dami-pref: per-question reasoning depth by interpolating an Instruct and a Thinking model."""

from .errors import DamiPrefError, PairMismatchError, ProblemsError
from .version import __version__

__all__ = ["DamiPrefError", "PairMismatchError", "ProblemsError", "InterpolationRuntime",
           "LambdaRanker", "__version__"]


def __getattr__(name: str):
    # Heavy imports (torch, transformers) only when the runtime is asked for.
    if name == "InterpolationRuntime":
        from .runtime import InterpolationRuntime

        return InterpolationRuntime
    if name == "LambdaRanker":
        from .ranker.inference import LambdaRanker

        return LambdaRanker
    raise AttributeError(name)
