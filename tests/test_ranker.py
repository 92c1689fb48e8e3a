"""The ranker: losses, pooling, what trains, checkpoints, Accelerate/DeepSpeed runs, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dami_pref.errors import DamiPrefError
from dami_pref.ranker.features import last_token_pool
from dami_pref.ranker.losses import pairwise_bce, pred_mse, route_bce
from dami_pref.ranker.config import TrainArgs
from dami_pref.ranker.training import train
from conftest import reset_accelerate_state

ROOT = Path(__file__).resolve().parents[1]
PREF = str(ROOT / "train" / "pref.py")


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


def quick_args(pairs: Path, out: Path, **changes) -> TrainArgs:
    base = TrainArgs(pairs=str(pairs), output=str(out), batch_size=8, max_steps=6,
                     eval_every=3, save_every=100, learning_rate=5e-3, device="cpu",
                     progress=False, report_to="none", max_length=64)
    return replace(base, **changes)


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


def test_pooling_takes_the_last_real_token_on_either_side():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert torch.equal(last_token_pool(hidden, right)[0], hidden[0, 1])
    assert torch.equal(last_token_pool(hidden, left)[0], hidden[0, 3])
    assert torch.equal(last_token_pool(hidden, right)[1], hidden[1, 3])


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
@pytest.mark.parametrize("objective", ["pref", "pred", "route"])
def test_trainable_parameters_change_and_the_backbone_does_not(toy_pairs, tmp_path, objective):
    from dami_pref.ranker.checkpoint import load_ranker
    from dami_pref.ranker.model import RankerSpec, build_ranker
    from dami_pref.toy import TOY_BASE

    out = tmp_path / "ranker"
    train(quick_args(toy_pairs, out, objective=objective))
    fresh, _ = build_ranker(RankerSpec(backbone=str(TOY_BASE), grid=[0.0, 0.25, 0.5, 0.75, 1.0],
                                       objective=objective), seed=0)
    trained, _, config = load_ranker(out)
    before = dict(fresh.named_parameters())
    after = dict(trained.named_parameters())
    trainable = [n for n, p in before.items() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any(n.startswith("head.") for n in trainable)
    unchanged = [n for n in trainable if torch.equal(before[n], after[n])]
    assert not unchanged, unchanged  # every LoRA matrix and every head weight and bias
    frozen = [n for n, p in before.items() if not p.requires_grad and n.startswith("backbone")]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert config["training"]["steps"] == 6 and config["objective"] == objective


def test_saved_ranker_round_trips(toy_pairs, tmp_path):
    from dami_pref.ranker.checkpoint import load_ranker, read_ranker_config
    from dami_pref.ranker.encoding import QuestionEncoder

    out = tmp_path / "ranker"
    train(quick_args(toy_pairs, out))
    assert {p.name for p in out.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json",
                                               "head.safetensors", "dami_pref.json",
                                               "tokenizer.json"}
    config = read_ranker_config(out)
    assert config["backbone"] == "dami_pref://toy/base" and config["grid"][-1] == 1.0
    a, tok, _ = load_ranker(out)
    b, _, _ = load_ranker(out)
    batch = QuestionEncoder(tok, "{question}", 64)(["3+4", "9+9+9+9"])
    with torch.no_grad():
        torch.testing.assert_close(a(**batch)["scores"], b(**batch)["scores"])


def test_batch_size_times_accumulation_is_equivalent(toy_pairs, tmp_path):
    one = train(quick_args(toy_pairs, tmp_path / "a", batch_size=16, max_steps=4))
    two = train(quick_args(toy_pairs, tmp_path / "b", batch_size=8,
                           gradient_accumulation_steps=2, max_steps=4))
    assert one["losses"] == pytest.approx(two["losses"], abs=1e-5)
    assert one["validation"]["pairwise_accuracy"] == pytest.approx(
        two["validation"]["pairwise_accuracy"], abs=1e-6)


def test_resume_continues_to_the_same_losses(toy_pairs, tmp_path):
    straight = train(quick_args(toy_pairs, tmp_path / "straight", max_steps=8, save_every=100))
    out = tmp_path / "stopped"
    train(quick_args(toy_pairs, out, max_steps=8, save_every=3))  # checkpoints at 3 and 6
    shutil.rmtree(out)  # as if the run had stopped after its step-6 checkpoint
    resumed = train(quick_args(toy_pairs, out, max_steps=8, save_every=3, resume=True))
    assert len(resumed["losses"]) == 8
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=1e-6)


@pytest.mark.parametrize("objective", ["pred", "route"])
def test_baseline_objectives_train(toy_pairs, tmp_path, objective):
    result = train(quick_args(toy_pairs, tmp_path / objective, objective=objective, max_steps=8))
    assert all(math.isfinite(x) for x in result["losses"])
    assert result["losses"][-1] < result["losses"][0]
    assert 0 <= result["validation"]["top1_agreement"] <= 1


# -- processes --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config: str, processes: int, pairs: Path, out: Path, *extra: str):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs" / "accelerate" / config), "--num_processes", str(processes),
           "--main_process_port", str(free_port()), PREF, "--pairs", str(pairs), "--output",
           str(out), "--max_steps", "6", "--eval_every", "3", "--learning_rate", "5e-3",
           "--max_length", "64", "--no-progress", "--report_to", "none", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc, json.loads((out / "dami_pref.json").read_text())["training"]


@pytest.mark.slow
def test_two_cpu_processes_match_one(toy_pairs, tmp_path):
    one = train(quick_args(toy_pairs, tmp_path / "one", batch_size=16))
    proc, two = launch("cpu.yaml", 2, toy_pairs, tmp_path / "two", "--batch_size", "8")
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

    _, training = launch(config, processes, toy_pairs, tmp_path / "ds", "--batch_size", "8")
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
        train(quick_args(broken, tmp_path / "r"))


def test_grid_mismatch_and_wrong_backbone(toy_pairs, tmp_path):
    with pytest.raises(DamiPrefError, match="differs from the grid of the pairs"):
        train(quick_args(toy_pairs, tmp_path / "r", grid="0:1:0.1"))
    with pytest.raises(DamiPrefError, match="backbone folder not found"):
        train(quick_args(toy_pairs, tmp_path / "r", backbone=str(tmp_path / "nope")))
    with pytest.raises(DamiPrefError, match="longer than the backbone's context"):
        train(quick_args(toy_pairs, tmp_path / "r", max_length=100_000))
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
        train(quick_args(broken, tmp_path / "r"))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(toy_pairs, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(DamiPrefError, match="non-finite") as info:
        train(quick_args(toy_pairs, out, learning_rate=1e9, head_learning_rate=1e9,
                         max_grad_norm=0.0, max_steps=40, save_every=1, keep_checkpoints=1))
    message = str(info.value)
    assert "last good checkpoint is" in message and not out.exists()
    kept = Path(message.split("last good checkpoint is ")[1].split(";")[0])
    state = json.loads((kept / "trainer_state.json").read_text())
    assert all(math.isfinite(x) for x in state["history"])


@pytest.mark.parametrize("n, world, batch", [(17, 2, 4), (5, 3, 1), (1, 2, 8), (0, 2, 4),
                                             (64, 4, 16)])
def test_eval_batches_are_even_across_processes(n, world, batch):
    """Every process runs as many evaluation batches (ZeRO-3 gathers in every forward pass),
    and together they score each example exactly once."""
    from dami_pref.ranker.training import eval_batches

    shares = [eval_batches(n, rank, world, batch) for rank in range(world)]
    assert len({len(s) for s in shares}) == 1
    seen = sorted(i for s in shares for b in s for i in b)
    assert seen == list(range(n))
    assert all(len(b) <= batch for s in shares for b in s)


def test_metrics_are_logged_through_the_stdout_tracker(toy_pairs, tmp_path, capsys):
    """The default tracker prints one JSON line per evaluation, as any Accelerate tracker gets."""
    train(quick_args(toy_pairs, tmp_path / "ranker", report_to="stdout"))
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()
             if x.startswith('{"step"')]
    assert [line["step"] for line in lines] == [3, 6]  # eval_every=3, max_steps=6
    for line in lines:
        assert {"train_loss", "lr", "val_pairwise_accuracy", "val_top1_agreement",
                "val_accuracy_regret", "val_tokens_regret"} <= set(line)
        assert 0.0 <= line["val_pairwise_accuracy"] <= 1.0 and line["train_loss"] > 0
