"""The λ ranker: model, training, checkpoints and inference."""

__all__ = ["LambdaRanker"]


def __getattr__(name: str):
    # torch and transformers load when the ranker is asked for, not when a light leaf module
    # (the option rules that train's command line checks before parsing) is imported
    if name == "LambdaRanker":
        from .inference import LambdaRanker

        return LambdaRanker
    raise AttributeError(name)
