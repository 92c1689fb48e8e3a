"""The exported ranker works outside this toolkit: portable base, plain peft, a complete card,
and the card's own snippet scoring a question with dami_pref made unimportable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import quick_args, reset_accelerate_state
from dami_pref.cli import main

QUESTIONS = ["3+4", "12+7+19", "5+18+2+11+9", "17+3+12+9+15+6+11+18"]


@pytest.fixture(scope="module")
def ranker_dir(toy_pairs, tmp_path_factory) -> Path:
    from dami_pref.ranker.training import train

    out = tmp_path_factory.mktemp("ranker") / "ranker"
    reset_accelerate_state()
    train(*quick_args(toy_pairs, out, max_steps=8, eval_steps=100))
    return out


@pytest.fixture(scope="module")
def exported(ranker_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "export"
    results = tmp_path_factory.mktemp("results") / "results.json"
    results.write_text(json.dumps({"test": {"problems": 700}, "data": {"test": {
        "source": "dami_pref://toy/problems/test.jsonl"}}, "methods": [
        {"method": "dami_pref", "label": "DAMI-Pref", "accuracy": 0.9, "mean_tokens": 20.5},
        {"method": "static_0", "label": "static λ=0", "accuracy": 0.5, "mean_tokens": 3.0}]}))
    assert main(["export", "--ranker", str(ranker_dir), "--out", str(out), "--repo-id",
                 "someone/toy-ranker", "--evaluation", str(results), "--dataset_id",
                 "someone/toy-pairs"]) == 0
    return out


def test_the_export_points_at_a_base_that_travels_with_it(exported):
    adapter = json.loads((exported / "adapter_config.json").read_text())
    config = json.loads((exported / "dami_pref.json").read_text())
    assert adapter["base_model_name_or_path"] == "base" and config["backbone"] == "./base"
    assert adapter["task_type"] == "FEATURE_EXTRACTION"
    assert (exported / "base" / "config.json").is_file()
    assert not any("/work" in line or "/tmp" in line or "/root" in line
                   for line in (exported / "adapter_config.json").read_text().splitlines())


def test_plain_peft_loads_the_adapter_onto_automodel(exported):
    """No missing adapter keys: every LoRA B matrix (trained, non-zero) arrives."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel

    model = PeftModel.from_pretrained(AutoModel.from_pretrained(exported / "base"), exported)
    saved = load_file(str(exported / "adapter_model.safetensors"))
    loaded = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert len(loaded) == sum("lora_B" in k for k in saved) > 0
    assert all(p.abs().sum() > 0 for p in loaded.values())


def test_the_card_is_complete_for_the_hub(exported):
    from huggingface_hub import ModelCard

    card = ModelCard.load(exported / "README.md")
    data = card.data
    assert data.library_name == "peft" and data.license == "apache-2.0"
    assert {"peft", "reward-model", "dami-pref"} <= set(data.tags)
    assert data.datasets == ["someone/toy-pairs"] and data.base_model is None  # a local base
    [accuracy, tokens] = data.eval_results  # the static row is left out
    assert (accuracy.metric_type, accuracy.metric_value) == ("accuracy", 90.0)
    assert (tokens.metric_type, tokens.metric_value) == ("mean_generated_tokens", 20.5)
    for section in ("## Candidate λ grid", "## How a question is scored", "## Training",
                    "## Evaluation", "## Usage", "## Limitations"):
        assert section in card.text
    assert "last non-pad token" in card.text and "GELU" in card.text and "cost" in card.text


def test_a_hub_backbone_is_the_base_model(ranker_dir, tmp_path):
    from dami_pref.ranker.card import model_card
    from dami_pref.ranker.checkpoint import read_ranker_config

    config = read_ranker_config(ranker_dir)
    config["backbone"] = "Qwen/Qwen3-0.6B"
    card = model_card(config, "me/r", "mit", base_model="Qwen/Qwen3-0.6B")
    assert "base_model: Qwen/Qwen3-0.6B" in card.split("---")[1]
    assert 'AutoModel.from_pretrained("Qwen/Qwen3-0.6B")' in card  # card text only; nothing is downloaded


def test_the_cards_snippet_scores_like_lambda_ranker_without_dami_pref(exported):
    from dami_pref import LambdaRanker

    card = (exported / "README.md").read_text()
    snippet = re.search(r"```python\n(.+?)```", card, flags=re.S).group(1)
    snippet = snippet.replace('"someone/toy-ranker"', repr(str(exported)))
    program = ("import sys\nsys.modules['dami_pref'] = None  # unimportable\n" + snippet +
               f"\nscores = score({QUESTIONS!r})\n"
               "import json; print(json.dumps({'scores': scores.tolist(), "
               "'chosen': chosen.tolist()}))\n")
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=300, cwd=exported.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = LambdaRanker.from_pretrained(exported, device="cpu").score(QUESTIONS)
    torch.testing.assert_close(torch.tensor(got["scores"]), expected, atol=1e-5, rtol=1e-5)
    assert len(got["chosen"]) == 2


def test_export_refuses_a_broken_ranker_before_writing(ranker_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(ranker_dir, broken)
    head = load_file(str(broken / "head.safetensors"))
    head["score.1.weight"] = torch.full_like(head["score.1.weight"], float("nan"))
    save_file(head, str(broken / "head.safetensors"))
    assert main(["export", "--ranker", str(broken), "--out", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "e").exists()
    (broken / "head.safetensors").write_bytes(b"not safetensors")
    assert main(["export", "--ranker", str(broken), "--out", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "e").exists()


def test_merge_writes_its_own_card(tmp_path):
    from huggingface_hub import ModelCard

    from dami_pref.runtime.checkpoints import checkpoint_fingerprint
    from dami_pref.toy import TOY_THINKING

    out = tmp_path / "merged"
    assert main(["merge", "--lambda", "0.3", "--out", str(out), "--dtype", "bfloat16"]) == 0
    card = ModelCard.load(out / "README.md")
    assert "merge" in card.data.tags and "λ = 0.3" in card.text
    assert "dami_pref://toy/instruct" in card.text and "Instruct" not in card.text.split("\n")[0]
    assert checkpoint_fingerprint(TOY_THINKING) in card.text
    assert "float32" in card.text and "bfloat16" in card.text
    assert "dami-pref merge --lambda 0.3 --out MERGED --dtype bfloat16" in card.text


def test_trl_prompt_column_is_what_the_ranker_reads(toy_pairs):
    """The pairs' TRL text column renders each question exactly as the λ-head ranker does."""
    import datasets
    from transformers import AutoTokenizer

    from dami_pref.ranker.encoding import QuestionEncoder
    from dami_pref.toy import TOY_BASE

    rows = datasets.load_from_disk(str(toy_pairs / "dataset"))["train"].select(range(5))
    encoder = QuestionEncoder(AutoTokenizer.from_pretrained(TOY_BASE), "{question}", 64)
    assert rows["prompt"] == encoder.texts(rows["question"])
    assert "pairs" in (toy_pairs / "README.md").read_text()


def copy_with_backbone(ranker_dir: Path, tmp_path: Path, extras: dict[str, bytes]) -> Path:
    """The ranker with its backbone as a local folder holding ``extras`` beside the model."""
    import shutil

    from dami_pref.toy import TOY_BASE

    backbone = tmp_path / "backbone"
    shutil.copytree(TOY_BASE, backbone)
    for name, data in extras.items():
        (backbone / name).write_bytes(data)
    ranker = tmp_path / "ranker"
    shutil.copytree(ranker_dir, ranker)
    config = json.loads((ranker / "dami_pref.json").read_text())
    config["backbone"] = str(backbone)
    (ranker / "dami_pref.json").write_text(json.dumps(config))
    return ranker


@pytest.mark.parametrize("planted", ["adapter_model.bin", "pytorch_model.bin",
                                     "training_args.bin"])
def test_export_refuses_a_pickle_in_the_ranker(ranker_dir, tmp_path, planted, capsys):
    import shutil

    ranker = tmp_path / "ranker"
    shutil.copytree(ranker_dir, ranker)
    torch.save({"x": torch.zeros(1)}, ranker / planted)
    assert main(["export", "--ranker", str(ranker), "--out", str(tmp_path / "e")]) == 2
    assert f"{planted}: a pickle-format file in the ranker" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_export_copies_only_model_files_of_a_local_backbone(ranker_dir, tmp_path):
    ranker = copy_with_backbone(ranker_dir, tmp_path, {"secrets.txt": b"token=abc"})
    (ranker / "notes.txt").write_text("mine")
    with pytest.warns(UserWarning, match=r"left out of the export.*notes\.txt"), \
            pytest.warns(UserWarning, match=r"left out of the export.*secrets\.txt"):
        assert main(["export", "--ranker", str(ranker), "--out", str(tmp_path / "e")]) == 0
    out = tmp_path / "e"
    assert not (out / "notes.txt").exists() and not (out / "base" / "secrets.txt").exists()
    assert sorted(p.name for p in (out / "base").iterdir()) == sorted(
        ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
         "tokenizer_config.json", "chat_template.jinja"])
    from dami_pref.ranker.inference import LambdaRanker

    torch.testing.assert_close(LambdaRanker.from_pretrained(out, device="cpu").score(QUESTIONS),
                               LambdaRanker.from_pretrained(ranker, device="cpu").score(QUESTIONS))


def test_export_refuses_a_pickle_in_a_local_backbone(ranker_dir, tmp_path, capsys):
    ranker = copy_with_backbone(ranker_dir, tmp_path, {"pytorch_model.bin": b"\x80\x04."})
    assert main(["export", "--ranker", str(ranker), "--out", str(tmp_path / "e")]) == 2
    assert "pytorch_model.bin: a pickle-format file in the backbone" in capsys.readouterr().err
