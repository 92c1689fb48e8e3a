"""The ranker: losses, pooling, what trains, checkpoints, Accelerate/DeepSpeed runs, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import quick_args, reset_accelerate_state, run_on_free_port
from dami_pref.errors import DamiPrefError
from dami_pref.ranker.losses import correctness_bce, pairwise_bce, pred_mse, route_bce
from dami_pref.ranker.training import train

ROOT = Path(__file__).resolve().parents[1]
PREF = str(ROOT / "train" / "pref.py")


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


# -- losses against hand-computed numbers ----------------------------------------------------
def test_pairwise_bce_by_hand():
    chosen = torch.tensor([2.0, 0.0, 1.0])
    rejected = torch.tensor([1.0, 0.0, 3.0])
    problem = torch.tensor([0, 0, 1])
    # -log σ(1) = 0.3132617, -log σ(0) = 0.6931472, -log σ(-2) = 2.1269280
    # problem 0: (0.3132617 + 0.6931472) / 2 = 0.5032044; problem 1: 2.1269280
    assert pairwise_bce(chosen, rejected, problem, 2).item() == pytest.approx(1.3150662, abs=1e-6)
    # margin 0.5: -log σ(0.5) = 0.4740770, -log σ(-0.5) = 0.9740770, -log σ(-2.5) = 2.5788897
    assert pairwise_bce(chosen, rejected, problem, 2, margin=0.5).item() == pytest.approx(
        (0.4740770 + 0.9740770) / 4 + 2.5788897 / 2, abs=1e-6)
    # weights 2, 1 on problem 0: (2·0.3132617 + 0.6931472) / 3 = 0.4398902
    weighted = pairwise_bce(chosen, rejected, problem, 2, weights=torch.tensor([2.0, 1.0, 1.0]))
    assert weighted.item() == pytest.approx((0.4398902 + 2.1269280) / 2, abs=1e-6)


def test_pred_and_route_losses_by_hand():
    assert pred_mse(torch.tensor([0.2, 0.9]), torch.tensor([0.0, 1.0])).item() == pytest.approx(
        0.025)
    # BCE(σ(0), 1) = log 2 = 0.6931472; BCE(σ(2), 0) = 2 + log(1 + e^-2) = 2.1269280
    assert route_bce(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(
        (0.6931472 + 2.1269280) / 2, abs=1e-6)


def test_correctness_loss_by_hand():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    acc = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    # BCE(σ(0), 1) = 0.6931472; BCE(σ(2), 0) = 2.1269280; BCE(σ(1), 1) = 0.3132617;
    # BCE(σ(−1), ½) = ½(1.3132617) + ½(0.3132617) = 0.8132617 (a graded accuracy)
    assert correctness_bce(logits, acc).item() == pytest.approx(
        (0.6931472 + 2.1269280 + 0.8132617 + 0.3132617) / 4, abs=1e-6)


def test_routing_label_is_instruct_answering_wrongly():
    """DAMI-Routing learns 'Instruct (the lowest λ) is wrong': 1 − acc at grid column 0, so both
    classes occur even on a pair where every oracle λ* is below ½."""
    from dami_pref.ranker.trainer import batch_loss

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return {"route": torch.tensor([0.0, 2.0])}

    batch = {"input_ids": None, "attention_mask": None, "oracle_lambda": torch.tensor([0.0, 0.2]),
             "acc": torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])}
    loss, _ = batch_loss(Fixed(), batch, "route")
    # targets 1 (Instruct wrong) and 0: (BCE(σ(0), 1) + BCE(σ(2), 0)) / 2
    assert loss.item() == pytest.approx((0.6931472 + 2.1269280) / 2, abs=1e-6)


def test_the_ranker_is_a_standard_classifier_with_the_grid_as_labels():
    from transformers import PreTrainedModel

    from dami_pref.ranker.model import RankerSpec, build_ranker
    from dami_pref.toy import TOY_BASE

    for objective, labels in (("acc", ["0", "0.5", "1"]), ("pred", ["lambda_hat"]),
                              ("route", ["think"])):
        model, tokenizer = build_ranker(RankerSpec(backbone=str(TOY_BASE), grid=[0.0, 0.5, 1.0],
                                                   objective=objective))
        base = model.backbone.get_base_model()
        assert isinstance(base, PreTrainedModel)
        assert type(base).__name__.endswith("ForSequenceClassification")
        assert [base.config.id2label[i] for i in range(base.config.num_labels)] == labels
        assert base.config.pad_token_id == tokenizer.pad_token_id
        assert model.head_parameters() and all("score" in n for n, p in model.named_parameters()
                                               if any(p is q for q in model.head_parameters()))


def test_left_and_right_padding_give_the_same_scores():
    from dami_pref.ranker.encoding import QuestionEncoder
    from dami_pref.ranker.model import RankerSpec, build_ranker
    from dami_pref.toy import TOY_BASE

    spec = RankerSpec(backbone=str(TOY_BASE), grid=[0.0, 0.5, 1.0])
    model, tokenizer = build_ranker(spec)
    model.eval()
    questions = ["3+4", "12+7+19+1+5+8"]
    right = QuestionEncoder(tokenizer, spec.prompt_template, 64)(questions)
    ids, mask = right["input_ids"], right["attention_mask"]
    lengths = mask.sum(1)
    left_ids, left_mask = torch.full_like(ids, tokenizer.pad_token_id), torch.zeros_like(mask)
    for row, n in enumerate(lengths.tolist()):
        left_ids[row, ids.shape[1] - n:] = ids[row, :n]
        left_mask[row, ids.shape[1] - n:] = 1
    with torch.no_grad():
        a = model(ids, mask)["scores"]
        b = model(left_ids, left_mask)["scores"]
        alone = model(ids[:1, :lengths[0]], mask[:1, :lengths[0]])["scores"]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[:1], alone, atol=1e-5, rtol=1e-5)


# -- training ---------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["pref", "acc", "pred", "route"])
def test_trainable_parameters_change_and_the_backbone_does_not(toy_pairs, tmp_path, objective):
    from dami_pref.ranker.checkpoint import load_ranker
    from dami_pref.ranker.model import RankerSpec, build_ranker
    from dami_pref.toy import TOY_BASE

    out = tmp_path / "ranker"
    train(*quick_args(toy_pairs, out, objective=objective))
    fresh, _ = build_ranker(RankerSpec(backbone=str(TOY_BASE), grid=[0.0, 0.25, 0.5, 0.75, 1.0],
                                       objective=objective), seed=0)
    trained, _, config = load_ranker(out)
    before = dict(fresh.named_parameters())
    after = dict(trained.named_parameters())
    trainable = [n for n, p in before.items() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any(".score." in n for n in trainable)
    unchanged = [n for n in trainable if torch.equal(before[n], after[n])]
    assert not unchanged, unchanged  # every LoRA matrix and the score layer
    # the score layer's untrained original (peft keeps it beside the trained copy) is unused
    frozen = [n for n, p in before.items() if not p.requires_grad and n.startswith("backbone")
              and "original_module" not in n]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert config["training"]["steps"] == 6 and config["objective"] == objective


def test_saved_ranker_round_trips(toy_pairs, tmp_path):
    from dami_pref.ranker.checkpoint import load_ranker, read_ranker_config
    from dami_pref.ranker.encoding import QuestionEncoder

    out = tmp_path / "ranker"
    train(*quick_args(toy_pairs, out))
    assert {p.name for p in out.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json",
                                               "dami_pref.json", "tokenizer.json"}
    config = read_ranker_config(out)
    assert config["backbone"] == "dami_pref://toy/base" and config["grid"][-1] == 1.0
    a, tok, _ = load_ranker(out)
    b, _, _ = load_ranker(out)
    batch = QuestionEncoder(tok, "{question}", 64)(["3+4", "9+9+9+9"])
    with torch.no_grad():
        torch.testing.assert_close(a(**batch)["scores"], b(**batch)["scores"])


def test_batch_size_times_accumulation_is_equivalent(toy_pairs, tmp_path):
    one = train(*quick_args(toy_pairs, tmp_path / "a", per_device_train_batch_size=16, max_steps=4))
    two = train(*quick_args(toy_pairs, tmp_path / "b", per_device_train_batch_size=8,
                           gradient_accumulation_steps=2, max_steps=4))
    assert one["losses"] == pytest.approx(two["losses"], abs=1e-5)
    assert one["validation"]["pairwise_accuracy"] == pytest.approx(
        two["validation"]["pairwise_accuracy"], abs=1e-6)


def test_resume_continues_to_the_same_losses(toy_pairs, tmp_path):
    straight = train(*quick_args(toy_pairs, tmp_path / "straight", max_steps=8))
    out = tmp_path / "stopped"
    train(*quick_args(toy_pairs, out, max_steps=8, save_steps=3))  # checkpoints at 6 and 8
    # as if the run had stopped after its step-6 checkpoint
    shutil.rmtree(out)
    shutil.rmtree(out.with_name("stopped-checkpoints") / "checkpoint-8")
    resumed = train(*quick_args(toy_pairs, out, max_steps=8, save_steps=3,
                                resume_from_checkpoint="true"))
    assert len(resumed["losses"]) == 8
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=1e-6)
    assert resumed["validation"] == pytest.approx(straight["validation"], abs=1e-6)


def test_resume_skips_an_interrupted_save_and_takes_the_newest_complete(toy_pairs, tmp_path,
                                                                       capsys):
    """A save killed mid-way (a 0-byte optimizer.pt, no trainer_state.json) is named and
    skipped; the run resumes from the newest complete checkpoint, to the same losses."""
    straight = train(*quick_args(toy_pairs, tmp_path / "straight", max_steps=8))
    out = tmp_path / "stopped"
    train(*quick_args(toy_pairs, out, max_steps=8, save_steps=3))  # checkpoints at 6 and 8
    shutil.rmtree(out)
    broken = out.with_name("stopped-checkpoints") / "checkpoint-8"
    (broken / "trainer_state.json").unlink()
    (broken / "optimizer.pt").write_bytes(b"")
    from helpers import killed_runs_temporary

    staging = killed_runs_temporary(broken.with_name("checkpoint-9"))  # a save killed mid-way
    (staging / "checkpoint-9").mkdir(parents=True)
    resumed = train(*quick_args(toy_pairs, out, max_steps=8, save_steps=3,
                                resume_from_checkpoint="true"))
    assert f"skipped {broken}: an incomplete checkpoint" in capsys.readouterr().err
    assert not staging.exists()
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=1e-6)


def test_checkpoints_are_renamed_into_place_whole(toy_pairs, tmp_path):
    """No temporary is left in the checkpoint folder, and every checkpoint-N is complete."""
    out = tmp_path / "r"
    train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2, save_total_limit=1))
    root = out.with_name("r-checkpoints")
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-4"]  # rotation still works
    assert (root / "checkpoint-4" / "trainer_state.json").is_file()


def test_resume_calls_a_truncated_file_damaged_not_dangerous(toy_pairs, tmp_path):
    out = tmp_path / "r"
    train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2))
    shutil.rmtree(out)
    optimizer = out.with_name("r-checkpoints") / "checkpoint-4" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    with pytest.raises(DamiPrefError, match=r"optimizer\.pt: the checkpoint is damaged"):
        train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2,
                          resume_from_checkpoint="true"))


@pytest.mark.parametrize("objective", ["acc", "pred", "route"])
def test_baseline_objectives_train(toy_pairs, tmp_path, objective):
    result = train(*quick_args(toy_pairs, tmp_path / objective, objective=objective, max_steps=8))
    assert all(math.isfinite(x) for x in result["losses"])
    assert result["losses"][-1] < result["losses"][0]
    assert 0 <= result["validation"]["top1_agreement"] <= 1


# -- processes --------------------------------------------------------------------------------
def launch(config: str, processes: int, pairs: Path, out: Path, *extra: str):
    def cmd(port: int) -> list[str]:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "configs" / "accelerate" / config), "--num_processes", str(processes),
                "--main_process_port", str(port), PREF, "--pairs", str(pairs), "--output_dir",
                str(out), "--max_steps", "6", "--eval_steps", "3", "--learning_rate", "5e-3",
                "--max_length", "64", "--disable_tqdm", "true", "--report_to", "none",
                "--logging_steps", "1", *extra]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = run_on_free_port(lambda port: subprocess.run(cmd(port), capture_output=True,
                                                        text=True, timeout=900, env=env))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc, json.loads((out / "dami_pref.json").read_text())["training"]


def test_a_finished_command_leaves_its_process_group(tmp_path):
    """gloo aborts an interpreter that exits inside a process group now and then."""
    import torch.distributed as dist

    from dami_pref.utils.devices import end_distributed

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        end_distributed(wait=True)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    end_distributed(wait=True)  # and outside a group it does nothing


@pytest.mark.slow
def test_two_cpu_processes_match_one(toy_pairs, tmp_path):
    one = train(*quick_args(toy_pairs, tmp_path / "one", per_device_train_batch_size=16))
    proc, two = launch("cpu.yaml", 2, toy_pairs, tmp_path / "two",
                       "--per_device_train_batch_size", "8", "--use_cpu", "true")
    assert two["processes"] == 2 and two["distributed_type"] == "MULTI_CPU"
    assert proc.stdout.count("pref: 6 steps") == 1  # only the main process reports
    for key in ("pairwise_accuracy", "top1_agreement", "accuracy_regret", "tokens_regret"):
        assert two["validation"][key] == pytest.approx(one["validation"][key], abs=0.02), key
    assert two["final_train_loss"] == pytest.approx(one["losses"][-1], rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("config, processes", [("deepspeed_zero2.yaml", 1),
                                               ("deepspeed_zero2.yaml", 2),
                                               ("deepspeed_zero3.yaml", 1),
                                               ("deepspeed_zero3.yaml", 2)])
def test_deepspeed_on_cpu(toy_pairs, tmp_path, config, processes):
    from dami_pref.ranker.checkpoint import load_ranker

    _, training = launch(config, processes, toy_pairs, tmp_path / "ds",
                         "--per_device_train_batch_size", "8")
    assert training["distributed_type"] == "DEEPSPEED" and training["processes"] == processes
    assert math.isfinite(training["final_train_loss"])
    model, _, _ = load_ranker(tmp_path / "ds")  # the gathered weights load back
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in model.named_parameters()
               if "lora_B" in n)


# -- bad input ----------------------------------------------------------------------------------
def test_pairs_missing_columns(toy_pairs, tmp_path):
    import datasets

    broken = tmp_path / "pairs"
    shutil.copytree(toy_pairs, broken)
    data = datasets.load_from_disk(str(toy_pairs / "dataset"))
    shutil.rmtree(broken / "dataset")
    datasets.DatasetDict({k: v.remove_columns(["chosen_lambda"]) for k, v in data.items()}
                         ).save_to_disk(str(broken / "dataset"))
    with pytest.raises(DamiPrefError, match=r"lack column\(s\) \['chosen_lambda'\]"):
        train(*quick_args(broken, tmp_path / "r"))


def test_grid_mismatch_and_wrong_backbone(toy_pairs, tmp_path):
    with pytest.raises(DamiPrefError, match="differs from the grid of the pairs"):
        train(*quick_args(toy_pairs, tmp_path / "r", grid="0:1:0.1"))
    with pytest.raises(DamiPrefError, match="backbone folder not found"):
        train(*quick_args(toy_pairs, tmp_path / "r", model_name_or_path=str(tmp_path / "nope")))
    with pytest.raises(DamiPrefError, match="longer than the backbone's context"):
        train(*quick_args(toy_pairs, tmp_path / "r", max_length=100_000))
    assert not (tmp_path / "r").exists()


def test_empty_training_split(toy_pairs, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    broken = tmp_path / "pairs"
    shutil.copytree(toy_pairs, broken)
    oracle = pq.read_table(broken / "oracle.parquet")
    oracle = oracle.set_column(oracle.schema.get_field_index("split"), "split",
                               pa.array(["validation"] * oracle.num_rows))
    pq.write_table(oracle, broken / "oracle.parquet")
    with pytest.raises(DamiPrefError, match="training split is empty"):
        train(*quick_args(broken, tmp_path / "r"))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(toy_pairs, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "r"
    with pytest.raises(DamiPrefError, match="non-finite") as info:
        train(*quick_args(toy_pairs, out, learning_rate=1e30, head_learning_rate=1e30,
                          max_grad_norm=0.0, max_steps=40, save_steps=1, save_total_limit=1))
    message = str(info.value)
    assert "last good checkpoint is" in message and not out.exists()
    kept = Path(message.split("last good checkpoint is ")[1].split(";")[0])
    state = json.loads((kept / "trainer_state.json").read_text())
    assert all(math.isfinite(row["loss"]) for row in state["log_history"] if "loss" in row)
    for name in ("adapter_model.safetensors",):  # its weights (LoRA and score) are finite
        assert all(bool(torch.isfinite(t).all()) for t in load_file(str(kept / name)).values())


@pytest.mark.parametrize("n, world, batch", [(17, 2, 4), (5, 3, 1), (1, 2, 8), (0, 2, 4),
                                             (64, 4, 16)])
def test_eval_batches_are_even_across_processes(n, world, batch):
    """Every process runs as many evaluation batches (ZeRO-3 gathers in every forward pass),
    and together they score each example exactly once."""
    from dami_pref.ranker.trainer import eval_batches

    shares = [eval_batches(n, rank, world, batch) for rank in range(world)]
    assert len({len(s) for s in shares}) == 1
    seen = sorted(i for s in shares for b in s for i in b)
    assert seen == list(range(n))
    assert all(len(b) <= batch for s in shares for b in s)


def test_metrics_are_logged_by_the_trainer(toy_pairs, tmp_path):
    """Evaluation metrics go through Trainer's log (and so to every --report_to integration)."""
    result = train(*quick_args(toy_pairs, tmp_path / "ranker"))
    evals = [row for row in result["log_history"] if "eval_pairwise_accuracy" in row]
    assert [row["step"] for row in evals] == [3, 6]  # eval_steps=3, max_steps=6
    for row in evals:
        assert {"eval_top1_agreement", "eval_accuracy_regret", "eval_tokens_regret",
                "eval_accuracy_selected"} <= set(row)
        assert 0.0 <= row["eval_pairwise_accuracy"] <= 1.0
    losses = [row for row in result["log_history"] if "loss" in row]
    assert len(losses) == 6 and all(row["loss"] > 0 and "learning_rate" in row for row in losses)


# -- resuming safely ----------------------------------------------------------------------------
class _Payload:
    """Unpickling this runs code: it writes a file (a stand-in for any command)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_resume_refuses_a_planted_pickle_and_runs_nothing(toy_pairs, tmp_path):
    out = tmp_path / "r"
    train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2))
    shutil.rmtree(out)
    checkpoint = out.with_name("r-checkpoints") / "checkpoint-4"
    marker = tmp_path / "ran.txt"
    torch.save({"state": _Payload(str(marker))}, checkpoint / "optimizer.pt")
    with pytest.raises(DamiPrefError, match=r"optimizer\.pt: refused to resume"):
        train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2,
                          resume_from_checkpoint="true"))
    assert not marker.exists()


def test_resume_refuses_other_settings_and_a_fresh_run_refuses_to_overwrite(toy_pairs, tmp_path):
    out = tmp_path / "r"
    train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2))
    with pytest.raises(DamiPrefError, match="already holds a ranker"):
        train(*quick_args(toy_pairs, out, max_steps=4))
    for change, key in ((dict(per_device_train_batch_size=4), "per_device_train_batch_size"),
                        (dict(lora_r=4), "lora"), (dict(objective="pred"), "objective")):
        with pytest.raises(DamiPrefError, match=f"made by another run.*{key}"):
            train(*quick_args(toy_pairs, out, max_steps=4, resume_from_checkpoint="true",
                              **change))
    again = train(*quick_args(toy_pairs, out, max_steps=4, overwrite_output_dir=True))
    assert again["steps"] == 4


def test_resuming_a_finished_run_trains_no_further(toy_pairs, tmp_path):
    out = tmp_path / "r"
    first = train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2))
    shutil.rmtree(out)  # killed after the last checkpoint, before the ranker folder was written
    again = train(*quick_args(toy_pairs, out, max_steps=4, save_steps=2,
                              resume_from_checkpoint="true"))
    assert again["steps"] == 4 and again["validation"] == pytest.approx(first["validation"])


@pytest.mark.slow
def test_deepspeed_resume_loads_weights_only(toy_pairs, tmp_path):
    out = tmp_path / "ds"
    launch("deepspeed_zero2.yaml", 1, toy_pairs, out, "--save_steps", "3",
           "--per_device_train_batch_size", "8")
    shutil.rmtree(out)
    shutil.rmtree(out.with_name("ds-checkpoints") / "checkpoint-6")
    _, training = launch("deepspeed_zero2.yaml", 1, toy_pairs, out, "--save_steps", "3",
                         "--per_device_train_batch_size", "8", "--resume_from_checkpoint", "true")
    assert training["steps"] == 6 and math.isfinite(training["final_train_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("config, processes", [("zero2.json", 1), ("zero3.json", 2)])
def test_deepspeed_json_under_torchrun(toy_pairs, tmp_path, config, processes):
    """``--deepspeed ds.json``, TRL's other way to ask for DeepSpeed, under torchrun on CPU."""
    out = tmp_path / "dj"
    def cmd(port: int) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                str(processes), "--master_port", str(port), PREF, "--pairs", str(toy_pairs),
                "--output_dir", str(out), "--max_steps", "4", "--eval_steps", "2",
                "--max_length", "64", "--disable_tqdm", "true", "--report_to", "none",
                "--per_device_train_batch_size", "8",
                "--deepspeed", str(ROOT / "configs" / "deepspeed" / config)]

    proc = run_on_free_port(lambda port: subprocess.run(
        cmd(port), capture_output=True, text=True, timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"}))
    assert proc.returncode == 0, proc.stderr[-4000:]
    training = json.loads((out / "dami_pref.json").read_text())["training"]
    assert training["distributed_type"] == "DEEPSPEED" and training["processes"] == processes


class FakeHub:
    """Stands in for the Hub: records what would be uploaded (this sandbox has no network)."""

    def __init__(self) -> None:
        self.uploads = []

    def whoami(self, token=None):
        return {"name": "tester"}

    def create_repo(self, repo_id, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        self.uploads.append((repo_id, folder_path, files,
                             (Path(folder_path) / "README.md").read_text()))


def test_push_to_hub_uploads_the_ranker_folder_with_its_card(toy_pairs, tmp_path, monkeypatch):
    import transformers.trainer
    import transformers.utils.hub

    hub = FakeHub()
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: hub)
    monkeypatch.setattr(transformers.utils.hub, "hf_api", lambda: hub)
    out = tmp_path / "ranker"
    train(*quick_args(toy_pairs, out, push_to_hub=True, hub_model_id="you/toy-ranker"))
    [(repo, folder, files, card)] = hub.uploads
    assert repo == "you/toy-ranker" and Path(folder) == out
    assert {"adapter_model.safetensors", "dami_pref.json", "README.md"} <= set(files)
    assert card.startswith("---") and "reward-model" in card and "# you/toy-ranker" in card


def test_push_to_hub_without_the_hub_stops_before_training(toy_pairs, tmp_path, monkeypatch):
    import transformers.utils.hub

    class Offline(FakeHub):
        def whoami(self, token=None):
            raise ConnectionError("no network")

    monkeypatch.setattr(transformers.utils.hub, "hf_api", lambda: Offline())
    with pytest.raises(DamiPrefError, match="cannot reach the Hugging Face Hub"):
        train(*quick_args(toy_pairs, tmp_path / "r", push_to_hub=True,
                          hub_model_id="you/toy-ranker"))
    assert not (tmp_path / "r").exists()


def tensorboard_scalars(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = next(folder.rglob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


def test_tensorboard_logs_survive_the_final_swap(toy_pairs, tmp_path, monkeypatch):
    """By default beside the ranker folder (OUT-runs/), or where TENSORBOARD_LOGGING_DIR says."""
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    out = tmp_path / "r"
    train(*quick_args(toy_pairs, out, max_steps=4, logging_steps=1, report_to=["tensorboard"]))
    assert "train/loss" in tensorboard_scalars(tmp_path / "r-runs")
    assert not (out / "runs").exists() and "TENSORBOARD_LOGGING_DIR" not in os.environ
    chosen = tmp_path / "my-logs"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(chosen))
    train(*quick_args(toy_pairs, tmp_path / "r2", max_steps=4, logging_steps=1,
                      report_to=["tensorboard"]))
    assert "train/loss" in tensorboard_scalars(chosen)


def test_a_missing_integration_is_one_line_naming_what_to_install(toy_pairs, tmp_path,
                                                                  monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "tensorboardX")
                        else real(name, *a))
    with pytest.raises(DamiPrefError, match="needs the tensorboard package: pip install "
                                            "tensorboard"):
        train(*quick_args(toy_pairs, tmp_path / "r", max_steps=2, report_to=["tensorboard"]))
    assert not (tmp_path / "r").exists()
