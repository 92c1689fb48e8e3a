"""``dami-pref serve --engine vllm`` as a drop-in OpenAI endpoint, with vLLM's own OpenAI server
over a ``dami-pref merge`` folder as the reference: every request shape the reference answers is
answered, stop strings end the answer, and streaming sends tokens as they are decoded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def vllm_reference(folder, log: Path) -> tuple[subprocess.Popen, str]:
    """vLLM's own OpenAI server over a merged folder, as a user would start it, on a free port
    (another one if that port was taken before the server bound it)."""
    from helpers import PORT_ATTEMPTS, free_port

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        with open(log, "w") as sink:  # a file, not a pipe: vLLM logs more than a pipe holds
            proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                                     "--model", str(folder), "--dtype", "float32", "--port",
                                     str(port), "--max-num-seqs", "8", "--disable-log-stats"],
                                    stdout=subprocess.DEVNULL, stderr=sink, env=env)
        base = f"http://127.0.0.1:{port}"
        if started(proc, base, log):
            return proc, base
    raise AssertionError("no free port for vLLM's server")


def started(proc: subprocess.Popen, base: str, log: Path) -> bool:
    from helpers import PORT_TAKEN

    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            if PORT_TAKEN in log.read_text().lower():
                return False
            raise AssertionError(f"vLLM's server exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1):
                return True
        except OSError:
            time.sleep(1)
    proc.kill()
    raise AssertionError("vLLM's server did not start")


STRUCTURED = {"response_format json_object": {"response_format": {"type": "json_object"}},
              "response_format json_schema": {"response_format": {
                  "type": "json_schema", "json_schema": {"name": "sum", "schema": {
                      "type": "object", "properties": {"sum": {"type": "integer"}}}}}}}


def shape_statuses(base: str, model: str) -> dict[str, int]:
    """Every chat and completions shape of the matrix: its status (answers checked as in the
    runtime's matrix)."""
    from helpers import ANSWERED, COMPLETIONS, ask_shape, check_answer

    statuses = {}
    for chat, shapes in ((True, {**ANSWERED, **STRUCTURED}), (False, COMPLETIONS)):
        for name, extra in shapes.items():
            status, answer = ask_shape(base, chat, extra, model)
            if status == 200:
                check_answer(name, extra, chat, answer)
            statuses[("chat " if chat else "completions ") + name] = status
    return statuses


def greedy_logprobs(base: str, model: str) -> list[tuple[str, float, list[str]]]:
    """A raw prompt's greedy tokens, each with its log-probability and the top 3 (completions:
    no chat template, so both servers read the same ids)."""
    from helpers import post

    body = {"model": model, "max_tokens": 40, "logprobs": 3, "prompt": "17+3+12+9",
            "temperature": 0}  # vLLM's server samples as generation_config.json says
    status, _, answer = post(base + "/v1/completions", body, 300)
    assert status == 200, answer
    legacy = answer["choices"][0]["logprobs"]
    return [(token, logprob, sorted(top)) for token, logprob, top in
            zip(legacy["tokens"], legacy["token_logprobs"], legacy["top_logprobs"])]


def test_every_shape_vllms_server_answers_is_answered_on_the_vllm_engine(tmp_path):
    from openai import OpenAI
    from helpers import start_server, train_ranker_here

    merged = tmp_path / "merge"
    subprocess.run([sys.executable, "-m", "dami_pref.cli", "merge", "--instruct", TOY_INSTRUCT,
                    "--thinking", TOY_THINKING, "--lambda", "0.5", "--output", str(merged)],
                   check=True, capture_output=True)
    proc, base = vllm_reference(merged, tmp_path / "vllm.log")
    try:
        reference = shape_statuses(base, str(merged))
        reference_logprobs = greedy_logprobs(base, str(merged))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    proc, base = start_server(train_ranker_here(tmp_path), "--engine", "vllm")
    try:
        ours = shape_statuses(base, "dami-pref@0.5")
        our_logprobs = greedy_logprobs(base, "dami-pref@0.5")
        client = OpenAI(base_url=base + "/v1", api_key="-", max_retries=0, timeout=300)
        full = client.completions.create(model="dami-pref@1", prompt="17+3+12+9", max_tokens=60)
        text = full.choices[0].text
        stop = text[len(text) // 3: len(text) // 3 + 2]
        cut = client.completions.create(model="dami-pref@1", prompt="17+3+12+9",
                                        max_tokens=60, stop=[stop])
        question = "+".join(str(7 + i) for i in range(24))
        started, arrivals = time.perf_counter(), []
        for chunk in client.chat.completions.create(
                model="dami-pref@1", stream=True, max_tokens=200,
                messages=[{"role": "user", "content": question}]):
            if chunk.choices and (chunk.choices[0].delta.content or
                                  (chunk.choices[0].delta.model_extra or {}).get("reasoning")):
                arrivals.append(time.perf_counter() - started)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert all(status == 200 for status in reference.values()), json.dumps(reference)
    assert ours == reference, json.dumps(ours)
    assert [(t, top) for t, _, top in our_logprobs] == [(t, top) for t, _, top in
                                                        reference_logprobs]
    assert max(abs(a[1] - b[1]) for a, b in zip(our_logprobs, reference_logprobs)) < 1e-3
    assert cut.choices[0].text == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"
    assert len(arrivals) >= 20 and arrivals[0] < 0.4 * arrivals[-1], arrivals[:3] + arrivals[-1:]
