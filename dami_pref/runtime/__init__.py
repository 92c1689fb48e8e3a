"""Serving a pair at any λ: checkpoints, the in-place interpolation runtime, generation, KV
caches, and static merges written as ordinary model folders."""

from .interpolation import InterpolationRuntime, LayerSimilarity

__all__ = ["InterpolationRuntime", "LayerSimilarity"]
