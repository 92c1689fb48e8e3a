"""The interpolation runtime: exactness, in-place switching, validation, LMC diagnostics."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from helpers import load_safetensors_dir, make_pair
from dami_pref.errors import DamiPrefError, PairMismatchError
from dami_pref.runtime import InterpolationRuntime
from dami_pref.utils.grid import LambdaError
from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING


def live_state(runtime) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in runtime.model.named_parameters()}


def test_endpoints_are_reproduced_bit_for_bit(tiny_pair):
    instruct, thinking = tiny_pair
    runtime = InterpolationRuntime(instruct, thinking, device="cpu")
    ref_i, ref_t = load_safetensors_dir(instruct), load_safetensors_dir(thinking)
    runtime.set_lambda(0.7)
    runtime.set_lambda(1.0)
    for name, value in live_state(runtime).items():
        assert torch.equal(value, ref_t[name]), name
    runtime.set_lambda(0.0)
    for name, value in live_state(runtime).items():
        assert torch.equal(value, ref_i[name]), name


def test_intermediate_lambda_matches_float32_reference(tiny_pair):
    instruct, thinking = tiny_pair
    runtime = InterpolationRuntime(instruct, thinking, device="cpu")
    ref_i, ref_t = load_safetensors_dir(instruct), load_safetensors_dir(thinking)
    for lam in (0.3, 0.55, 0.3):  # returning to a λ gives the same weights: no drift
        runtime.set_lambda(lam)
        for name, value in live_state(runtime).items():
            expected = ref_i[name] + lam * (ref_t[name] - ref_i[name])
            torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)


def test_bf16_blend_is_the_float32_reference_rounded_once(tiny_pair_bf16):
    instruct, thinking = tiny_pair_bf16
    runtime = InterpolationRuntime(instruct, thinking, device="cpu")
    assert runtime.dtype == torch.bfloat16  # "auto" keeps the stored dtype
    ref_i, ref_t = load_safetensors_dir(instruct), load_safetensors_dir(thinking)
    runtime.set_lambda(0.4)
    for name, value in live_state(runtime).items():
        exact = torch.lerp(ref_i[name].float(), ref_t[name].float(), 0.4)
        # within one bf16 rounding of the exact blend (a relative step of 2^-8)
        assert torch.all((value.float() - exact).abs() <= exact.abs() * 2 ** -8 + 1e-30), name


def test_switch_is_in_place_and_counted(tiny_pair):
    runtime = InterpolationRuntime(*tiny_pair, device="cpu")
    pointers = {n: p.data_ptr() for n, p in runtime.model.named_parameters()}
    runtime.set_lambda(0.5)
    runtime.set_lambda(0.5)  # same λ: no work
    runtime.set_lambda(0.2)
    assert runtime.switches == 2 and runtime.lam == 0.2
    assert pointers == {n: p.data_ptr() for n, p in runtime.model.named_parameters()}
    n_params = sum(p.numel() for p in runtime.model.parameters())
    assert runtime.bytes_per_switch == 3 * 4 * n_params


def test_tied_embeddings_stay_tied(tiny_pair):
    runtime = InterpolationRuntime(*tiny_pair, device="cpu")
    runtime.set_lambda(0.6)
    model = runtime.model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "abc", None])
def test_lambda_outside_unit_interval_is_refused(tiny_pair, bad):
    runtime = InterpolationRuntime(*tiny_pair, device="cpu")
    runtime.set_lambda(0.3)
    with pytest.raises(LambdaError, match="λ must"):
        runtime.set_lambda(bad)
    assert runtime.lam == 0.3  # nothing changed


def test_float32_request_on_bf16_pair_upcasts(tiny_pair_bf16):
    runtime = InterpolationRuntime(*tiny_pair_bf16, device="cpu", dtype="float32")
    assert all(p.dtype == torch.float32 for p in runtime.model.parameters())


def test_shape_mismatch_names_the_parameter(tmp_path):
    instruct, thinking = make_pair(tmp_path, thinking_overrides={"intermediate_size": 48})
    with pytest.raises(PairMismatchError, match="intermediate_size"):
        InterpolationRuntime(instruct, thinking, device="cpu")


def test_tensor_shape_mismatch_with_equal_configs_is_caught(tmp_path):
    instruct, thinking = make_pair(tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(thinking / "model.safetensors"))
    name = "model.layers.0.mlp.up_proj.weight"
    tensors[name] = tensors[name][:-1].contiguous()
    save_file(tensors, str(thinking / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(PairMismatchError, match=r"up_proj.weight.*shape"):
        InterpolationRuntime(instruct, thinking, device="cpu")


def test_architecture_mismatch(tmp_path):
    import json

    instruct, thinking = make_pair(tmp_path)
    config = json.loads((thinking / "config.json").read_text())
    config["architectures"] = ["LlamaForCausalLM"]
    (thinking / "config.json").write_text(json.dumps(config))
    with pytest.raises(PairMismatchError, match="architectures differ"):
        InterpolationRuntime(instruct, thinking, device="cpu")


def test_vocabulary_mismatch(tmp_path):
    import json

    instruct, thinking = make_pair(tmp_path)
    tok = json.loads((thinking / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]
    (thinking / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(PairMismatchError, match="token 'a'"):
        InterpolationRuntime(instruct, thinking, device="cpu")


def test_dtype_mismatch(tmp_path):
    instruct, thinking = make_pair(tmp_path)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(thinking).to(torch.bfloat16).save_pretrained(thinking)
    with pytest.raises(PairMismatchError, match="stored as"):
        InterpolationRuntime(instruct, thinking, device="cpu")


def test_missing_files_and_pickles(tmp_path):
    instruct, thinking = make_pair(tmp_path)
    with pytest.raises(DamiPrefError, match="not found"):
        InterpolationRuntime(instruct, tmp_path / "nowhere", device="cpu")
    (thinking / "config.json").unlink()
    with pytest.raises(DamiPrefError, match="config.json is missing"):
        InterpolationRuntime(instruct, thinking, device="cpu")
    shutil.copy(instruct / "config.json", thinking / "config.json")
    (thinking / "model.safetensors").rename(thinking / "pytorch_model.bin")
    with pytest.raises(DamiPrefError, match="safetensors only"):
        InterpolationRuntime(instruct, thinking, device="cpu")


def test_missing_cuda_is_a_clear_error(tiny_pair):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the error path is for machines without one")
    with pytest.raises(DamiPrefError, match="no CUDA GPU"):
        InterpolationRuntime(*tiny_pair, device="cuda")


def test_lmc_report_close_pair_and_warning_for_unrelated_pair(tmp_path, tiny_pair):
    runtime = InterpolationRuntime(*tiny_pair, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pair from one base must not warn
        report = runtime.lmc_report()
    groups = {r.group for r in report}
    assert {"layers.0", "layers.1", "embed_tokens"} <= groups
    assert min(r.cosine for r in report) > 0.95
    unrelated = make_pair(tmp_path, noise=1.0)  # noise far larger than the weights
    with pytest.warns(UserWarning, match="cosine similarity below"):
        low = InterpolationRuntime(*unrelated, device="cpu").lmc_report()
    assert min(r.cosine for r in low) < 0.95


def test_delta_mode_holds_two_copies_and_tracks_the_reference(tiny_pair):
    instruct, thinking = tiny_pair
    exact = InterpolationRuntime(instruct, thinking, device="cpu")
    delta = InterpolationRuntime(instruct, thinking, device="cpu", memory_mode="delta")
    assert delta.resident_bytes * 3 == exact.resident_bytes * 2
    assert delta.bytes_per_switch == exact.bytes_per_switch
    ref_i, ref_t = load_safetensors_dir(instruct), load_safetensors_dir(thinking)
    import random

    rng = random.Random(0)
    for lam in [rng.random() for _ in range(50)] + [0.3]:
        delta.set_lambda(lam)
    for name, value in live_state(delta).items():
        expected = torch.lerp(ref_i[name], ref_t[name], 0.3)
        # float32 drift after 51 switches stays far below the weights' scale
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(DamiPrefError, match="memory_mode='exact'"):
        delta.endpoint_state("instruct")
    assert min(r.cosine for r in delta.lmc_report()) > 0.95


def test_delta_mode_answers_like_exact_on_the_toy_pair():
    from dami_pref.runtime.generation import DecodingOptions, GenerationRequest

    requests = [GenerationRequest(q, lam) for q in ("3+4", "12+7+19+5", "9+18+2+11+9+14")
                for lam in (0.0, 0.4, 1.0)]
    options = DecodingOptions(max_new_tokens=80)
    exact = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu").generate(requests, options)
    delta = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu", memory_mode="delta").generate(requests, options)
    assert [r.completion for r in delta] == [r.completion for r in exact]


def test_unknown_memory_mode(tiny_pair):
    with pytest.raises(DamiPrefError, match="memory_mode must be one of"):
        InterpolationRuntime(*tiny_pair, device="cpu", memory_mode="tiny")


def test_parameter_name_vocabulary_size_and_unreadable_weights(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    instruct, thinking = make_pair(tmp_path)
    tensors = load_file(str(thinking / "model.safetensors"))
    renamed = {k.replace("layers.1.mlp.up_proj", "layers.1.mlp.upper_proj"): v
               for k, v in tensors.items()}
    save_file(renamed, str(thinking / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(PairMismatchError, match="parameter names differ"):
        InterpolationRuntime(instruct, thinking, device="cpu")
    save_file(tensors, str(thinking / "model.safetensors"), metadata={"format": "pt"})

    tok = json.loads((thinking / "tokenizer.json").read_text())
    tok["model"]["vocab"]["<extra>"] = max(tok["model"]["vocab"].values()) + 1
    original = (thinking / "tokenizer.json").read_text()
    (thinking / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(PairMismatchError, match="differ in size"):
        InterpolationRuntime(instruct, thinking, device="cpu")
    (thinking / "tokenizer.json").write_text(original)

    (thinking / "model.safetensors").write_bytes(b"\x00" * 32)
    with pytest.raises(DamiPrefError, match="not a readable safetensors file"):
        InterpolationRuntime(instruct, thinking, device="cpu")


def test_missing_shard_is_named(tmp_path):
    from transformers import AutoModelForCausalLM

    instruct, thinking = make_pair(tmp_path)
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(thinking).save_pretrained(sharded, max_shard_size="20KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (thinking / name).exists():
            shutil.copy(thinking / name, sharded / name)
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1
    shards[-1].unlink()
    with pytest.raises(DamiPrefError, match=f"missing.*{shards[-1].name}"):
        InterpolationRuntime(instruct, sharded, device="cpu")
