"""The λ ranker: model, training, checkpoints and inference."""

from .inference import LambdaRanker

__all__ = ["LambdaRanker"]
