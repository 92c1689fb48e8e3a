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

import pytest

from dami_pref.toy import TOY_INSTRUCT, TOY_THINKING

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def vllm_reference(folder, port: int) -> tuple[subprocess.Popen, str]:
    """vLLM's own OpenAI server over a merged folder, as a user would start it."""
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                             "--model", str(folder), "--dtype", "float32", "--port", str(port),
                             "--max-num-seqs", "8", "--disable-log-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        assert proc.poll() is None, "vLLM's server exited"
        try:
            with urllib.request.urlopen(base + "/health", timeout=1):
                return proc, base
        except OSError:
            time.sleep(1)
    proc.kill()
    raise AssertionError("vLLM's server did not start")


def shape_statuses(base: str, model: str) -> dict[str, int]:
    from test_serve import ANSWERED, post

    statuses = {}
    shapes = {**ANSWERED, "response_format json_object": {"response_format": {
        "type": "json_object"}}, "response_format json_schema": {"response_format": {
            "type": "json_schema", "json_schema": {"name": "sum", "schema": {
                "type": "object", "properties": {"sum": {"type": "integer"}}}}}}}
    for name, extra in shapes.items():
        if extra.get("stream"):
            continue
        body = {"model": model, "max_tokens": 24,
                "messages": [{"role": "user", "content": "12+7+19"}], **extra}
        statuses[name] = post(base + "/v1/chat/completions", body, 300)[0]
    return statuses


def test_every_shape_vllms_server_answers_is_answered_on_the_vllm_engine(tmp_path):
    from openai import OpenAI
    from test_serve import free_port, start_server
    from test_vllm_mixed import session_ranker_dir

    merged = tmp_path / "merge"
    subprocess.run([sys.executable, "-m", "dami_pref.cli", "merge", "--instruct", TOY_INSTRUCT,
                    "--thinking", TOY_THINKING, "--lambda", "0.5", "--output", str(merged)],
                   check=True, capture_output=True)
    proc, base = vllm_reference(merged, free_port())
    try:
        reference = shape_statuses(base, str(merged))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    proc, base = start_server(session_ranker_dir(tmp_path), "--engine", "vllm")
    try:
        ours = shape_statuses(base, "dami-pref@0.5")
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
    assert cut.choices[0].text == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"
    assert len(arrivals) >= 20 and arrivals[0] < 0.4 * arrivals[-1], arrivals[:3] + arrivals[-1:]
