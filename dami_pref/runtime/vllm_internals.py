"""The one place where dami-pref touches vLLM's internals, pinned to the versions it was tested on.

Mixed-λ batches need to know which request each scheduled token belongs to; vLLM keeps no public
per-token request index, but its model runner fills one (``req_indices``) before every forward.
This module hands that buffer to the mixed-λ model once, right after the runner loads it (so a
CUDA graph captured later reads it in place), and finds a model class by architecture name. Every
other piece uses public extension points (``ModelRegistry.register_model`` from a
``vllm.general_plugins`` entry point, custom logits processors, ``SamplingParams.extra_args``,
``cache_salt``). Other vLLM versions are refused with one line.
"""

from __future__ import annotations

TESTED_VERSIONS = ("0.32.",)  # vLLM releases whose model runner this module was tested against
LAMBDA_KEY = "dami_lambda"  # SamplingParams.extra_args key carrying a request's λ
MIXED_PREFIX = "DamiMixed"  # DamiMixed<Arch>: the mixed-λ model class of an architecture
MIXED_MODULE = "dami_pref.runtime.vllm_mixed"
# The hook is on the V1 model runner (the only one on CPUs; a GPU would otherwise pick V2).
ENVIRONMENT = {"VLLM_USE_V2_MODEL_RUNNER": "0"}


def unsupported_version() -> str | None:
    """Why this vLLM cannot run mixed-λ batches, or None when it can."""
    import vllm

    version = getattr(vllm, "__version__", "?")
    if version.startswith(TESTED_VERSIONS):
        return None
    return (f"mixed-λ batches were tested on vLLM {', '.join(v + 'x' for v in TESTED_VERSIONS)} "
            f"and this is vLLM {version}; install a tested version or use "
            "--lambda_batching grouped")


def register() -> None:
    """The ``vllm.general_plugins`` entry point, run in every vLLM process: the mixed-λ model
    class of every causal LM architecture (built on demand), and the runner hook."""
    if unsupported_version():
        return
    from vllm.model_executor.models.registry import ModelRegistry

    for arch in list(ModelRegistry.get_supported_archs()):
        if arch.endswith("ForCausalLM") and not arch.startswith(MIXED_PREFIX):
            ModelRegistry.register_model(MIXED_PREFIX + arch,
                                         f"{MIXED_MODULE}:{MIXED_PREFIX}{arch}")
    _hook_model_runners()


def base_model_class(arch: str):
    """vLLM's model class for an architecture name, or None."""
    from vllm.model_executor.models.registry import ModelRegistry

    return ModelRegistry._try_load_model_cls(arch)


def _hook_model_runners() -> None:
    """After a model runner loads a model, give a mixed-λ model the runner's per-token slot
    buffer (``req_indices``: token t of the step belongs to persistent-batch slot
    ``req_indices[t]``, filled by ``_prepare_inputs`` before every forward)."""
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    runners = [GPUModelRunner]
    try:
        from vllm.v1.worker.cpu_model_runner import CPUModelRunner
        runners.append(CPUModelRunner)  # it overrides load_model
    except ImportError:  # a build without the CPU backend
        pass
    for runner in runners:
        load = runner.__dict__.get("load_model")
        if load is None or getattr(load, "_dami_hooked", False):
            continue

        def load_model(self, *args, _load=load, **kwargs):
            _load(self, *args, **kwargs)
            model = self.get_model()
            if hasattr(model, "dami_bind"):
                model.dami_bind(self.req_indices.gpu)

        load_model._dami_hooked = True
        runner.load_model = load_model
