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

from dami_pref.cli import main

QUESTIONS = ["3+4", "12+7+19", "5+18+2+11+9", "17+3+12+9+15+6+11+18"]


@pytest.fixture(scope="module")
def ranker_dir(session_ranker) -> Path:
    return session_ranker


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


def test_the_export_is_a_plain_classifier_folder(exported):
    """Model files only, a config naming the grid as labels, no path of this machine."""
    from dami_pref.ranker.export_files import MODEL_FILES, matches

    names = {p.name for p in exported.iterdir()}
    assert names >= {"config.json", "model.safetensors", "tokenizer_config.json",
                     "dami_pref.json", "README.md", "evaluation.json"}
    assert all(matches(exported / n, MODEL_FILES) or n in ("dami_pref.json", "README.md",
                                                            "evaluation.json") for n in names)
    config = json.loads((exported / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForSequenceClassification"]
    ranker = json.loads((exported / "dami_pref.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(ranker["grid"]))] == \
        [f"{lam:g}" for lam in ranker["grid"]]
    assert ranker["form"] == "merged" and ranker["backbone"] == "./"
    assert ranker["pair"]["instruct"]["name"] == "dami_pref://toy/instruct"
    for name in ("config.json", "dami_pref.json", "README.md"):
        text = (exported / name).read_text()
        assert "/work/" not in text and "/tmp/" not in text and "/root/" not in text, name


def hub_cache(folder: Path, repo_id: str, root: Path) -> Path:
    """A Hugging Face cache holding ``folder`` as the snapshot of ``repo_id`` (no network)."""
    import shutil

    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    return root


def run_without_dami_pref(program: str, cwd: Path, env: dict | None = None):
    """Python without dami_pref: ``-S`` skips the site hooks that install it (an editable
    install is one), only the libraries' folder is on the path, and the name is blocked too."""
    import os
    import sysconfig

    program = "import sys\nsys.modules['dami_pref'] = None  # unimportable\n" + program
    env = {**(env or os.environ), "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    return subprocess.run([sys.executable, "-S", "-c", program], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def test_one_standard_call_loads_a_renamed_copy_and_scores_like_lambda_ranker(exported,
                                                                              tmp_path):
    import shutil

    from dami_pref import LambdaRanker

    copy = tmp_path / "anything-else"
    shutil.copytree(exported, copy)
    program = (
        "import json, torch\nfrom transformers import AutoModelForSequenceClassification, "
        "AutoTokenizer\n"
        f"m = AutoModelForSequenceClassification.from_pretrained({str(copy)!r}).eval()\n"
        f"t = AutoTokenizer.from_pretrained({str(copy)!r})\n"
        f"texts = [t.apply_chat_template([{{'role': 'user', 'content': q}}], tokenize=False, "
        f"add_generation_prompt=True) for q in {QUESTIONS!r}]\n"
        "t.padding_side = 'right'\n"
        "b = t(texts, padding=True, add_special_tokens=False, return_tensors='pt')\n"
        f"acc = json.load(open({str(copy / 'dami_pref.json')!r}))['objective'] == 'acc'\n"
        "with torch.no_grad(): z = m(**b).logits.float()\n"
        "print(json.dumps((z.sigmoid() if acc else z).tolist()))\n")
    proc = run_without_dami_pref(program, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.tensor(json.loads(proc.stdout.strip().splitlines()[-1]))
    expected = LambdaRanker.from_pretrained(exported, device="cpu").score(QUESTIONS)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_the_card_is_complete_for_the_hub(exported):
    from huggingface_hub import ModelCard

    card = ModelCard.load(exported / "README.md")
    data = card.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    assert data.pipeline_tag == "text-classification"
    assert {"reward-model", "dami-pref"} <= set(data.tags)
    assert data.datasets == ["someone/toy-pairs"] and data.base_model is None  # a local base
    [accuracy, tokens] = data.eval_results  # this model's own row only
    assert (accuracy.metric_type, accuracy.metric_value) == ("accuracy", 90.0)
    assert (tokens.metric_type, tokens.metric_value) == ("mean_generated_tokens", 20.5)
    assert accuracy.dataset_type == "someone/toy-pairs"
    assert accuracy.task_type == "text-classification"
    for section in ("## Candidate λ grid", "## How a question is scored", "## Training",
                    "## Evaluation", "## Usage", "## Limitations"):
        assert section in card.text
    assert "static λ=0" in card.text  # the baselines are in the text
    assert "dami_pref://toy/instruct" in card.text and "dami_pref://toy/thinking" in card.text
    assert "https://github.com/" in card.text and "](https://github.com)" not in card.text
    assert not re.search(r"\d\.\d{7,}", card.text) and "| 0.25 |" in card.text  # λ as typed


def test_a_hub_backbone_is_the_base_model(ranker_dir):
    from dami_pref.ranker.card import model_card
    from dami_pref.ranker.checkpoint import read_ranker_config

    config = read_ranker_config(ranker_dir)
    config["backbone"] = "Qwen/Qwen3-0.6B"
    card = model_card(config, "me/r", "mit", base_model="Qwen/Qwen3-0.6B")
    assert "base_model: Qwen/Qwen3-0.6B" in card.split("---")[1]
    assert "`Qwen/Qwen3-0.6B`" in card  # card text only; nothing is downloaded


def test_the_cards_snippet_runs_verbatim_against_the_hub(exported, tmp_path):
    """Against a local Hub cache made here (offline), with dami_pref unimportable: the snippet
    as written chooses what LambdaRanker.select chooses at the validation-chosen β."""
    import os

    from dami_pref import LambdaRanker

    card = (exported / "README.md").read_text()
    snippet = re.search(r"```python\n(.+?)```", card, flags=re.S).group(1)
    assert 'repo = \'someone/toy-ranker\'' in snippet
    cache = hub_cache(exported, "someone/toy-ranker", tmp_path / "hub")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    proc = run_without_dami_pref(snippet + "\nimport json; print(json.dumps("
                                 "{'scores': scores.tolist(), 'chosen': chosen.tolist()}))\n",
                                 tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    ranker = LambdaRanker.from_pretrained(exported, device="cpu")
    torch.testing.assert_close(torch.tensor(got["scores"]), ranker.score(["12+7+19", "3+4"]),
                               atol=1e-5, rtol=1e-5)
    assert got["chosen"] == pytest.approx(ranker.select(["12+7+19", "3+4"]))


def test_export_refuses_a_broken_ranker_before_writing(ranker_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(ranker_dir, broken)
    adapter = load_file(str(broken / "adapter_model.safetensors"))
    name = next(k for k in adapter if "score" in k)
    adapter[name] = torch.full_like(adapter[name], float("nan"))
    save_file(adapter, str(broken / "adapter_model.safetensors"))
    assert main(["export", "--ranker", str(broken), "--out", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "e").exists()
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
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
    assert ("dami-pref merge --lambda 0.3 --output MERGED --instruct dami_pref://toy/instruct "
            "--thinking dami_pref://toy/thinking --dtype bfloat16") in card.text


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


def test_export_writes_only_model_files(ranker_dir, tmp_path):
    """Files beside the ranker (and beside its local backbone) stay out, named in a warning."""
    ranker = copy_with_backbone(ranker_dir, tmp_path, {"secrets.txt": b"token=abc"})
    (ranker / "notes.txt").write_text("mine")
    with pytest.warns(UserWarning, match=r"left out of the export.*notes\.txt"):
        assert main(["export", "--ranker", str(ranker), "--out", str(tmp_path / "e")]) == 0
    out = tmp_path / "e"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "chat_template.jinja", "dami_pref.json", "README.md"])
    from dami_pref.ranker.inference import LambdaRanker

    torch.testing.assert_close(LambdaRanker.from_pretrained(out, device="cpu").score(QUESTIONS),
                               LambdaRanker.from_pretrained(ranker, device="cpu").score(QUESTIONS))


def test_export_refuses_a_pickle_in_a_local_backbone(ranker_dir, tmp_path, capsys):
    ranker = copy_with_backbone(ranker_dir, tmp_path, {"pytorch_model.bin": b"\x80\x04."})
    assert main(["export", "--ranker", str(ranker), "--out", str(tmp_path / "e")]) == 2
    assert "pytorch_model.bin: a pickle-format file in the backbone" in capsys.readouterr().err
