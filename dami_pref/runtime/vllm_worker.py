"""What dami-pref adds to each vLLM worker (vLLM's ``worker_extension_cls``): loading a blend.

vLLM calls these methods by name through ``LLM.collective_rpc``, in every worker of the engine
(one per tensor-parallel rank), so a λ switch reaches every shard. The module imports nothing of
vLLM at import time: vLLM imports it inside its workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def tied_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Modules whose weight is one Parameter shared with another module (a tied output layer).

    vLLM's reload skips the checkpoint name of a tied copy (``lm_head.weight``), so the module
    holding it is never reloaded; on CPU it keeps a repacked copy of the old weight, made when
    the engine started. These modules must be processed again after every reload.
    """
    owners: dict[int, list[torch.nn.Module]] = {}
    for module in model.modules():
        weight = module._parameters.get("weight")
        if weight is not None:
            owners.setdefault(id(weight), []).append(module)
    return [m for group in owners.values() if len(group) > 1 for m in group
            if getattr(m, "quant_method", None) is not None]


class BlendWorkerExtension:
    """Mixed into vLLM's worker class; ``self`` is the worker."""

    def dami_load_weights(self, weights: Sequence[tuple[str, torch.Tensor]]) -> int:
        """Replace every weight of the model with ``weights`` (checkpoint names and layout).

        vLLM's in-place reload rewrites each layer and runs its post-load processing (on CPU,
        the repacking of linear weights); tied modules are then processed again from the new
        weight. Returns how many tensors were given, for the caller to check.
        """
        self.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
        with torch.no_grad():
            for module in tied_modules(self.model_runner.get_model()):
                module.quant_method.process_weights_after_loading(module)
        return len(weights)
