"""The rules of the options the library and the command line share, declared once.

The library's settings (``DecodingOptions``, ``KVCacheOptions``, ``VLLMSettings``) take them as
field metadata and check themselves with :func:`~dami_pref.utils.options.check_options`; the
commands' options take the same entries, so a rule and its help cannot drift apart. (A leaf
module: the command line reads it without importing torch.)
"""

from __future__ import annotations

from .options import at_least, between

DECODING = {"max_new_tokens": at_least(1), "temperature": at_least(0),
            "top_p": between(0, 1, low_in=False), "batch_size": at_least(1),
            "presence_penalty": between(-2, 2), "frequency_penalty": between(-2, 2),
            "logprobs": between(0, 20)}
KV_CACHE = {"residual_length": at_least(1), "group_size": at_least(1)}
PAIRS = {"acc_tolerance": between(0, 1, high_in=False),
         "cost_tolerance": between(0, 1, high_in=False),
         "validation_fraction": between(0, 1, high_in=False)}
VLLM = {"tensor_parallel_size": at_least(1), "gpu_memory_utilization": between(0, 1, low_in=False),
        "max_model_len": at_least(2)}
