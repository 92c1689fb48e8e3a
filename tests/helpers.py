"""What the tests share: processes run in-process, tiny models and toy rollouts, servers on
race-free ports, the OpenAI request-shape matrix, and dead runs' temporaries.

Test modules import from here (``from helpers import ...``), never from ``conftest`` (which holds
only fixtures and hooks) or from one another.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch

from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

PORT_ATTEMPTS = 5
PORT_TAKEN = "address already in use"  # what uvicorn and torch.distributed say, lower-cased


# -- processes -------------------------------------------------------------------------------

def reset_accelerate_state() -> None:
    """Forget Accelerate's process-wide state between in-process runs, with accelerate's own
    test helper (``AccelerateTestCase.tearDown`` resets ``AcceleratorState`` and ``GradientState``)."""
    from accelerate.test_utils.testing import AccelerateTestCase

    AccelerateTestCase().tearDown()


def run_in_process(*argv: str, stdin: str | None = None):
    """``dami-pref ARGV`` in this process (no interpreter start; the console script itself is
    started by test_cli's help tests): a CompletedProcess with status, stdout and stderr."""
    import contextlib
    import io
    import subprocess
    import sys

    from dami_pref.cli import main

    out, err, given = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    reset_accelerate_state()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        sys.stdin = given
        reset_accelerate_state()
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


# -- tiny models and toy rollouts ------------------------------------------------------------

def quick_args(pairs: Path, out: Path, **changes):
    """Arguments of a quick ranker training on CPU (the three objects ``train`` takes)."""
    from dami_pref.ranker.config import ranker_arguments
    from dami_pref.toy import TOY_BASE

    values = dict(pairs=str(pairs), output_dir=str(out), model_name_or_path=str(TOY_BASE),
                  per_device_train_batch_size=8,
                  max_steps=6, eval_steps=3, save_steps=100, learning_rate=5e-3, use_cpu=True,
                  disable_tqdm=True, report_to="none", max_length=64, logging_steps=1)
    return ranker_arguments(**{**values, **changes})


def tiny_config(vocab_size: int, **overrides):
    from transformers import Qwen3Config

    values = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                  max_position_embeddings=128, tie_word_embeddings=True,
                  rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
                  pad_token_id=0, eos_token_id=4)
    values.update(overrides)
    return Qwen3Config(**values)


def save_model(model, tokenizer, folder: Path, dtype: torch.dtype | None = None) -> Path:
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_pair(root: Path, *, seed: int = 0, noise: float = 0.002, dtype: torch.dtype | None = None,
              config_overrides: dict | None = None, thinking_overrides: dict | None = None):
    """A random base and two slightly perturbed copies: a pair that shares a base."""
    from transformers import Qwen3ForCausalLM

    from dami_pref.toy.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    base = Qwen3ForCausalLM(tiny_config(len(tokenizer), **(config_overrides or {})))
    folders = []
    for name, overrides in (("instruct", {}), ("thinking", thinking_overrides)):
        if overrides:
            model = Qwen3ForCausalLM(tiny_config(len(tokenizer),
                                                 **{**(config_overrides or {}), **overrides}))
        else:
            model = Qwen3ForCausalLM(base.config)
            model.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in model.parameters():
                p.add_(noise * torch.randn_like(p))
        folders.append(save_model(model, tokenizer, root / name, dtype))
    return tuple(folders)


def load_safetensors_dir(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    index = folder / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values()))
             if index.exists() else ["model.safetensors"])
    for name in files:
        out.update(load_file(str(folder / name)))
    return out


ROLLOUT_BUDGET = 80  # the generation budget of the tests' rollouts


def build_toy_pairs(root: Path, n_problems: int = 64, grid=(0.0, 0.25, 0.5, 0.75, 1.0),
                    validation_fraction: float = 0.25) -> Path:
    """Real rollouts of the toy pair on a few training problems, turned into a pairs folder."""
    from dami_pref.data.pair_dataset import PromptRendering, build_pair_dataset
    from dami_pref.data.preferences import PairOptions
    from dami_pref.data.problems import load_problems
    from dami_pref.data.rollouts import ensure_rollouts, pair_identity
    from dami_pref.runtime import InterpolationRuntime
    from dami_pref.runtime.generation import DecodingOptions
    from dami_pref.toy import TOY_BASE, toy_problems_path

    problems = load_problems(toy_problems_path("train"), limit=n_problems)
    runtime = InterpolationRuntime(TOY_INSTRUCT, TOY_THINKING, device="cpu")
    pair = pair_identity(TOY_INSTRUCT, TOY_THINKING, "auto", "{question}", "instruct")
    ensure_rollouts(runtime, problems, grid, DecodingOptions(max_new_tokens=ROLLOUT_BUDGET),
                    root / "rollouts", pair=pair, shard_size=32, progress=False,
                    source={"instruct": "dami_pref://toy/instruct",
                            "thinking": "dami_pref://toy/thinking"})
    build_pair_dataset(root / "rollouts", root / "pairs", PairOptions(),
                       rendering=PromptRendering(str(TOY_BASE)),
                       validation_fraction=validation_fraction, seed=0)
    return root / "pairs"


def train_ranker_here(tmp_path: Path) -> Path:
    """A ranker trained in this process on fresh toy rollouts (for environments, such as vLLM's,
    whose tests build their own)."""
    from dami_pref.ranker.training import train

    pairs = build_toy_pairs(tmp_path / "pairs")
    reset_accelerate_state()
    train(*quick_args(pairs, tmp_path / "ranker", objective="acc", max_steps=4, eval_steps=100))
    reset_accelerate_state()
    return tmp_path / "ranker"


# -- servers ------------------------------------------------------------------------------

QUESTIONS = ["3+4", "12+7+19", "5+18+2+11+9", "17+3+12+9"]
MAX_TOKENS = 80


def free_port() -> int:
    """A port free right now; another process may take it before it is bound, so the callers
    below retry (``PORT_TAKEN`` in the log) with another."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ranker: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``dami-pref serve`` on a free loopback port, once it answers /health. A port taken by
    another process between choosing and binding it is retried with another."""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.Popen([sys.executable, "-m", "dami_pref.cli", "serve", "--ranker",
                                 str(ranker), "--port", str(port), "--device", "cpu",
                                 "--max_new_tokens", str(MAX_TOKENS), *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        base = f"http://127.0.0.1:{port}"
        if wait_healthy(proc, base):
            return proc, base
    raise AssertionError(f"no free port in {PORT_ATTEMPTS} tries")


def wait_healthy(proc: subprocess.Popen, base: str, timeout: float = 600) -> bool:
    """True once ``base``/health answers; False if the server lost its port to another
    process; an AssertionError with its log for any other exit."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            log = proc.stderr.read().decode() if proc.stderr else ""
            if PORT_TAKEN in log.lower():
                return False
            raise AssertionError(f"the server exited: {log[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not start")


def run_on_free_port(run: Callable[[int], subprocess.CompletedProcess]
                     ) -> subprocess.CompletedProcess:
    """``run(port)`` for a command that listens on ``port`` (accelerate's and torchrun's
    rendezvous), again on another port if that one was taken meanwhile."""
    for _ in range(PORT_ATTEMPTS):
        proc = run(free_port())
        if proc.returncode == 0 or PORT_TAKEN not in _text(proc.stderr).lower():
            return proc
    return proc


def _text(stream) -> str:
    return stream.decode(errors="replace") if isinstance(stream, bytes) else stream or ""


def wait_for_queue(base: str, depth: int, timeout: float = 120) -> None:
    """Until at least ``depth`` requests wait in the server's queue."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(base + "/health") as response:
            if json.loads(response.read())["queue_depth"] >= depth:
                return
        time.sleep(0.05)
    raise AssertionError(f"the queue never held {depth} requests")


def metric(base: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name)


def post(url: str, body: dict, timeout: float) -> tuple[int, dict, dict]:
    """Status, headers and JSON body of a POST (urllib: an error status is an answer too)."""
    import urllib.error

    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def raw_post(base: str, path: str, text: str) -> tuple[int, dict]:
    """POST a body as raw text (NaN, 1e999 and lone surrogates are not JSON the openai client
    writes)."""
    import urllib.error

    request = urllib.request.Request(base + path, data=text.encode("utf-8", "surrogatepass"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def stream_events(url: str, body: dict) -> list[dict]:
    """The data events of a streamed answer, [DONE] excluded."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        lines = response.read().decode().splitlines()
    assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]", lines[-3:]
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


# -- the OpenAI request-shape matrix -----------------------------------------------------

ANSWERED = {  # chat shapes common clients send, each answered 200
    "content parts": {"messages": [{"role": "user", "content": [{"type": "text",
                                                                 "text": "3+4"}]}]},
    "content parts, several": {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "3+4"}, {"type": "text", "text": "+5"}]}]},
    "system and history": {"messages": [
        {"role": "system", "content": "Add the numbers."}, {"role": "user", "content": "3+4"},
        {"role": "assistant", "content": "7", "reasoning_content": "3+4=7"},
        {"role": "user", "content": "12+7+19"}]},
    "developer message": {"messages": [{"role": "developer", "content": "Add."},
                                       {"role": "user", "content": "3+4"}]},
    "named user": {"messages": [{"role": "user", "name": "ann", "content": "3+4"}]},
    "stop string": {"stop": "="}, "stop list": {"stop": ["=", "\n\n"]}, "stop null": {"stop": None},
    "n=2 sampled": {"n": 2, "temperature": 1.0},
    "seeded sampling": {"temperature": 0.8, "seed": -7},
    "top_p": {"temperature": 0.7, "top_p": 0.9}, "greedy": {"temperature": 0},
    "penalties": {"presence_penalty": 0.5, "frequency_penalty": 0.5},
    "logprobs": {"logprobs": True}, "top_logprobs": {"logprobs": True, "top_logprobs": 3},
    "logit_bias": {"logit_bias": {"12": -100, "13": 5}},
    "ignored fields": {"metadata": {"k": "v"}, "store": False, "user": "u",
                       "service_tier": "auto", "parallel_tool_calls": False},
    "tools, tool_choice none": {"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "none"},
    "response_format text": {"response_format": {"type": "text"}},
    "max_completion_tokens": {"max_completion_tokens": 8}, "max_tokens null": {"max_tokens": None},
    "stream": {"stream": True},
    "stream_options": {"stream": True, "stream_options": {"include_usage": True}},
    "stream n=2": {"stream": True, "n": 2, "temperature": 1.0},
    "stream stop": {"stream": True, "stop": "="},
    "stream logprobs": {"stream": True, "logprobs": True, "top_logprobs": 1},
}

COMPLETIONS = {  # completions shapes, each answered 200
    "prompt": {}, "prompt list": {"prompt": ["3+4", "12+7+19"]}, "echo": {"echo": True},
    "logprobs": {"logprobs": 2}, "stop": {"stop": ["="]}, "n=2 sampled": {"n": 2, "temperature": 1},
    "best_of = n": {"best_of": 1}, "seeded sampling": {"temperature": 0.9, "seed": 3},
    "penalties": {"presence_penalty": 1.0}, "user": {"user": "u"},
    "logit_bias": {"logit_bias": {"12": -100}}, "stream": {"stream": True},
}

REFUSED = {  # shapes refused with a 400 naming the field (raw JSON text after the messages)
    '"messages": [{"role": "robot", "content": "1+2"}]': "role",
    '"messages": [{"role": "user"}]': "no user message",
    '"messages": [{"role": "system", "content": "hi"}]': "no user message",
    '"messages": [{"role": "user", "content": ""}]': "no user message",
    '"messages": [{"role": "user", "content": "1+2 \\ud800"}]': "messages[0].content",
    '"cost_weight": NaN': "cost_weight", '"cost_weight": 1e999': "cost_weight",
    '"cost_weight": -1e999': "cost_weight", '"temperature": 1e999': "temperature",
    '"temperature": 5': "temperature", '"max_tokens": true': "max_tokens",
    '"seed": 1180591620717411303424': "seed", '"temperatur": 0.5': "temperatur",
    '"response_format": {"type": "json_object"}': "response_format",
    '"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"': "tools",
    '"top_logprobs": 3': "top_logprobs", '"logprobs": true, "top_logprobs": 21': "top_logprobs",
    '"logit_bias": {"abc": 1}': "logit_bias", '"logit_bias": {"99999999": 1}': "logit_bias",
    '"top_p": 0': "top_p", '"n": 0': "n", '"stop": [""]': "stop",
}

COMPLETIONS_REFUSED = {  # raw JSON text after the prompt
    '"suffix": "x"': "suffix", '"echo": true, "logprobs": 1': "logprobs",
    '"best_of": 2': "best_of", '"logprobs": 6': "logprobs", '"prompt": ""': "prompt",
}


def check_answer(name: str, extra: dict, chat: bool, answer: dict) -> None:
    """One 200 answer is right for its shape: choices, stop strings, log-probabilities."""
    prompts = extra.get("prompt") if isinstance(extra.get("prompt"), list) else [0]
    assert len(answer["choices"]) == extra.get("n", 1) * len(prompts), name
    for choice in answer["choices"]:
        text = choice["message"]["content"] if chat else choice["text"]
        for stop in ([extra["stop"]] if isinstance(extra.get("stop"), str)
                     else extra.get("stop") or []):
            assert stop not in text, name
        wanted = extra.get("logprobs")
        if not wanted:
            assert choice["logprobs"] is None, name
            continue
        entries = choice["logprobs"]["content"] if chat else \
            list(zip(choice["logprobs"]["tokens"], choice["logprobs"]["top_logprobs"]))
        assert entries, name
        tops = [e["top_logprobs"] for e in entries] if chat else [e[1] for e in entries]
        if chat:
            assert all(len(top) == (extra.get("top_logprobs") or 0) for top in tops), name
        else:  # the legacy layout: the chosen token and the `logprobs` most likely ones
            assert all(token in top and len(top) in (wanted, wanted + 1)
                       for token, top in entries), name


def ask_shape(base: str, chat: bool, extra: dict, model: str = "dami-pref") -> tuple[int, dict]:
    """A shape's status and answer; a stream's events put together as one answer."""
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body = {"model": model, "max_tokens": 24, **(
        {"messages": [{"role": "user", "content": "12+7+19"}]} if chat else
        {"prompt": "12+7+19"}), **extra}
    if not extra.get("stream"):
        status, _, answer = post(base + path, body, 120)
        return status, answer
    choices: dict[int, dict] = {}
    for event in stream_events(base + path, body):
        for part in event["choices"]:
            choice = choices.setdefault(part["index"], {"text": "", "logprobs": None,
                                                        "message": {"content": ""}})
            piece = (part["delta"].get("content") or "") if chat else part["text"]
            choice["text"] += piece
            choice["message"]["content"] += piece
            if part["logprobs"] is not None:
                choice["logprobs"] = part["logprobs"]
    return 200, {"choices": [choices[i] for i in sorted(choices)]}


# -- killed runs -----------------------------------------------------------------------------

def dead_pid() -> int:
    """The PID of a process that has ended (what a killed run's temporaries carry)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def killed_runs_temporary(out: Path, tag: str = "") -> Path:
    from dami_pref.utils.io import temporary_sibling

    mine = temporary_sibling(out, tag)
    return mine.with_name(mine.name.replace(str(os.getpid()), str(dead_pid())))
