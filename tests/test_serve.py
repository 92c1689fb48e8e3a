"""``dami-pref serve`` against the official ``openai`` client, on a real server on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import (ANSWERED, COMPLETIONS, COMPLETIONS_REFUSED, MAX_TOKENS, QUESTIONS, REFUSED,
                     ask_shape, check_answer, metric, post, raw_post, start_server,
                     stream_events, wait_for_queue)


@pytest.fixture(scope="module")
def ranker_dir(session_ranker) -> Path:
    return session_ranker


@pytest.fixture(scope="module")
def server(ranker_dir):
    proc, base = start_server(ranker_dir, "--max_queue", "64")
    yield base
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server + "/v1", api_key="not-needed", max_retries=0, timeout=120)


def test_models_and_health(client, server, ranker_dir):
    names = [m.id for m in client.models.list()]
    grid = json.loads((ranker_dir / "dami_pref.json").read_text())["grid"]
    assert names == ["dami-pref"] + [f"dami-pref@{lam:g}" for lam in grid]
    with urllib.request.urlopen(server + "/health") as response:
        assert json.loads(response.read())["status"] == "ok"


def test_chat_the_ranker_chooses_lambda(client, ranker_dir):
    from dami_pref import LambdaRanker

    response = client.chat.completions.create(
        model="dami-pref", messages=[{"role": "user", "content": "12+7+19"}])
    choice = response.model_extra["dami_pref"]
    expected = LambdaRanker.from_pretrained(ranker_dir, device="cpu").select(["12+7+19"])[0]
    assert choice["chosen_by"] == "ranker" and choice["lambda"] == pytest.approx(expected)
    assert set(choice["scores"]) == {f"{g:g}" for g in
                                     json.loads((ranker_dir / "dami_pref.json").read_text())["grid"]}
    usage = response.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert response.choices[0].message.role == "assistant"


def test_a_request_fixes_lambda_and_thinking_goes_to_reasoning_content(client):
    thinking = client.chat.completions.create(
        model="dami-pref", messages=[{"role": "user", "content": "17+3+12+9"}],
        extra_body={"lambda": 1.0})
    assert thinking.model_extra["dami_pref"]["lambda"] == 1.0
    message = thinking.choices[0].message
    assert message.model_extra["reasoning_content"] and "<think>" not in message.content
    assert thinking.usage.completion_tokens_details.reasoning_tokens > 0
    direct = client.chat.completions.create(
        model="dami-pref@0", messages=[{"role": "user", "content": "17+3+12+9"}])
    assert direct.model_extra["dami_pref"]["lambda"] == 0.0
    assert direct.choices[0].message.model_extra["reasoning_content"] is None
    assert direct.usage.completion_tokens < thinking.usage.completion_tokens
    priced = client.chat.completions.create(
        model="dami-pref", messages=[{"role": "user", "content": "17+3+12+9"}],
        extra_body={"cost_weight": 100.0})  # tokens priced out: the cheapest λ
    assert priced.model_extra["dami_pref"]["lambda"] == 0.0


def test_streaming_matches_chat(client):
    chat = client.chat.completions.create(
        model="dami-pref@0.5", messages=[{"role": "user", "content": "5+18+2+11+9"}])
    stream = client.chat.completions.create(
        model="dami-pref@0.5", messages=[{"role": "user", "content": "5+18+2+11+9"}],
        stream=True, stream_options={"include_usage": True})
    content, reasoning, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            content += c.delta.content or ""
            reasoning += (c.delta.model_extra or {}).get("reasoning_content") or ""
            finish = c.finish_reason or finish
    assert content == chat.choices[0].message.content
    assert reasoning == (chat.choices[0].message.model_extra["reasoning_content"] or "")
    assert reasoning == (chat.choices[0].message.model_extra["reasoning"] or "")
    assert finish == chat.choices[0].finish_reason and usage.total_tokens == chat.usage.total_tokens


def test_errors_are_openai_json(client, server):
    import openai

    for body, error in (({"lambda": 1.5}, openai.BadRequestError),
                        ({"temperatur": 0.5}, openai.BadRequestError)):
        with pytest.raises(error) as info:
            client.chat.completions.create(model="dami-pref", extra_body=body,
                                           messages=[{"role": "user", "content": "1+2"}])
        assert info.value.status_code == 400 and info.value.body["type"] == \
            "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "1"}])
    assert "does not exist" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:  # longer than the context
        client.completions.create(model="dami-pref@0", prompt="+".join(["1"] * 300))
    assert "context" in info.value.body["message"]
    request = urllib.request.Request(server + "/v1/chat/completions", data=b"{not json",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request)
    assert raw.value.code == 400 and "not valid JSON" in json.loads(raw.value.read())[
        "error"]["message"]


def test_metrics_parse_and_count(client, server):
    from prometheus_client.parser import text_string_to_metric_families

    client.completions.create(model="dami-pref@1", prompt="3+4")
    with urllib.request.urlopen(server + "/metrics") as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    requests = sum(s.value for s in families["dami_pref_requests"].samples
                   if s.name.endswith("_total") and s.labels["status"] == "200")
    assert requests >= 1
    assert any(s.value > 0 for s in families["dami_pref_completion_tokens"].samples)
    lam = {s.labels.get("le"): s.value for s in families["dami_pref_lambda"].samples
           if s.name.endswith("_bucket")}
    assert lam["1.0"] >= 1 and "dami_pref_lambda_switches" in families
    assert "dami_pref_queue_depth" in families and "dami_pref_request_seconds" in families


def test_greedy_answers_equal_select_generate(client, ranker_dir):
    proc = subprocess.run([sys.executable, "-m", "dami_pref.cli", "select", "--ranker",
                           str(ranker_dir), "--question", *QUESTIONS, "--generate",
                           "--max_new_tokens", str(MAX_TOKENS), "--format", "jsonl",
                           "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    for row in rows:
        response = client.chat.completions.create(
            model="dami-pref", messages=[{"role": "user", "content": row["question"]}])
        assert response.model_extra["dami_pref"]["lambda"] == pytest.approx(row["lambda"])
        assert response.usage.completion_tokens == row["n_tokens"]
        from dami_pref.utils.answers import split_thinking

        assert response.choices[0].message.content == \
            (split_thinking(row["completion"]).answer_text.strip()
             if "</think>" in row["completion"] else row["completion"].strip())


@pytest.mark.slow
def test_load_every_request_answered_once_and_alike(client):
    """200 requests from 16 concurrent clients over four λ groups: each is answered exactly
    once, and alike to the same request served alone (batching changes no answer)."""
    models = ["dami-pref", "dami-pref@0", "dami-pref@0.5", "dami-pref@1"]
    work = [(QUESTIONS[i % 4], models[(i // 4) % 4]) for i in range(200)]
    alone = {key: client.completions.create(model=key[1], prompt=key[0]).choices[0].text
             for key in set(work)}

    def ask(item):
        return item, client.completions.create(model=item[1], prompt=item[0])

    with ThreadPoolExecutor(16) as pool:
        answered = list(pool.map(ask, work))
    assert len(answered) == 200 and len({r.id for _, r in answered}) == 200
    assert all(r.choices[0].text == alone[item] for item, r in answered)


@pytest.mark.slow
def test_sigterm_drains_the_requests_in_flight(ranker_dir):
    """Eight long requests served one at a time; SIGTERM after the first starts: every one is
    still answered, then the server exits."""
    from openai import OpenAI

    proc, base = start_server(ranker_dir, "--max_batch", "1")
    client = OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=300)
    prompts = [f"17+3+12+9+15+{i}" for i in range(8)]
    finished: list[float] = []

    def ask(prompt):
        response = client.completions.create(model="dami-pref@1", prompt=prompt, max_tokens=220)
        finished.append(time.monotonic())
        return response

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, p) for p in prompts]
        wait_for_queue(base, 4)  # accepted: one in the engine, several waiting
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        responses = [f.result(timeout=300) for f in futures]
    # uvicorn drains, then re-raises the signal: the conventional exit of a SIGTERM'd server
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert len(responses) == 8 and all(r.usage.completion_tokens > 0 for r in responses)
    assert max(finished) > signalled  # some were still waiting when the signal came


@pytest.mark.slow
def test_a_drain_that_ends_answers_503_json_never_500(ranker_dir):
    """SIGTERM with a 1 s drain and ten long requests served one at a time: each client gets
    its answer or an OpenAI-style 503 with Retry-After (a stream: an error event, then [DONE]),
    and the log holds no traceback."""
    proc, base = start_server(ranker_dir, "--max_batch", "1", "--drain_seconds", "1")
    body = {"model": "dami-pref@1", "prompt": "17+3+12+9+15", "max_tokens": 220}

    def ask(i):
        if i == 0:
            return 200, {}, {"events": stream_events(base + "/v1/completions",
                                                     {**body, "stream": True})}
        return post(base + "/v1/completions", body, 300)

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(ask, i) for i in range(10)]
        wait_for_queue(base, 4)
        proc.send_signal(signal.SIGTERM)
        answers = [f.result(timeout=300) for f in futures]
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    log = proc.stderr.read().decode()
    assert "Traceback" not in log and "CancelledError" not in log, log[-2000:]
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503} and 503 in statuses, statuses
    for status, headers, answer in answers[1:]:
        if status == 503:
            assert answer["error"]["type"] == "server_overloaded" and \
                {k.lower(): v for k, v in headers.items()}["retry-after"]
    events = answers[0][2]["events"]
    assert events[-1].get("error", {}).get("code") == 503 or \
        events[-1]["choices"][0]["finish_reason"], events[-1]


@pytest.mark.slow
def test_a_full_queue_is_429_with_retry_after(ranker_dir):
    import openai
    from openai import OpenAI

    proc, base = start_server(ranker_dir, "--max_queue", "1", "--max_batch", "1")
    client = OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=300)

    def ask(i):
        try:
            client.completions.create(model="dami-pref@1", prompt=f"17+3+12+9+{i}",
                                      max_tokens=220)
            return None
        except openai.RateLimitError as err:
            return err

    try:
        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(ask, range(6)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    refused = [e for e in outcomes if e is not None]
    assert refused and len(refused) < 6
    assert all(e.status_code == 429 and e.response.headers["retry-after"] == "1"
               and e.body["type"] == "rate_limit_exceeded" for e in refused)


@pytest.mark.slow
def test_a_client_that_leaves_never_reaches_the_engine(ranker_dir):
    """The disconnect is an event: a client that gives up while queued behind three one-request
    batches is dropped before the engine sees it, and the three others are answered."""
    from openai import OpenAI

    proc, base = start_server(ranker_dir, "--max_batch", "1")
    try:
        client = OpenAI(base_url=base + "/v1", api_key="-", max_retries=0, timeout=120)
        long = dict(model="dami-pref@1", max_tokens=MAX_TOKENS, prompt="5+18+2+11+9+17+3")
        with ThreadPoolExecutor(3) as pool:
            busy = [pool.submit(client.completions.create, **long) for _ in range(3)]
            wait_for_queue(base, 2)  # one in the engine, two waiting: the fourth waits too
            with pytest.raises(TimeoutError):  # the client gives up and closes the connection
                post(base + "/v1/completions", long, timeout=0.05)
            assert all(f.result().choices[0].text is not None for f in busy)
        assert metric(base, "dami_pref_cancelled_requests_total") == 1
        assert metric(base, "dami_pref_engine_requests_total") == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.slow
def test_a_request_that_waits_too_long_is_503_with_retry_after(ranker_dir):
    proc, base = start_server(ranker_dir, "--max_batch", "1", "--max_wait_seconds", "0.05")
    try:
        body = dict(model="dami-pref@1", max_tokens=MAX_TOKENS, prompt="5+18+2+11+9+17+3")
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda _: post(base + "/v1/completions", body, 120),
                                    range(3)))
        statuses = sorted(status for status, _, _ in replies)
        assert statuses[0] == 200 and 503 in statuses, statuses
        _, headers, late = next(r for r in replies if r[0] == 503)
        assert headers["retry-after"] == "1"
        error = late["error"]
        assert error["type"] == "server_overloaded" and "--max_wait_seconds" in error["message"]
        assert metric(base, "dami_pref_expired_requests_total") == statuses.count(503)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


# -- a drop-in OpenAI endpoint: the conversation, every field clients send, streaming ----------


def test_the_whole_conversation_reaches_the_model(client, ranker_dir):
    from transformers import AutoTokenizer

    from dami_pref.toy import TOY_INSTRUCT

    tokenizer = AutoTokenizer.from_pretrained(TOY_INSTRUCT)
    turns = [{"role": "system", "content": "Add the numbers."},
             {"role": "user", "content": "3+4"}, {"role": "assistant", "content": "7"},
             {"role": "user", "content": "12+7+19"}]
    response = client.chat.completions.create(model="dami-pref@0.5", messages=turns)
    rendered = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    assert response.usage.prompt_tokens == len(tokenizer(rendered, add_special_tokens=False)[
        "input_ids"])
    alone = client.chat.completions.create(model="dami-pref@0.5",
                                           messages=[{"role": "user", "content": "12+7+19"}])
    assert response.usage.prompt_tokens > alone.usage.prompt_tokens
    parts = client.chat.completions.create(model="dami-pref@0.5", messages=[
        {"role": "developer", "content": [{"type": "text", "text": "Add the numbers."}]},
        *turns[1:3], {"role": "user", "content": [{"type": "text", "text": "12+7+19"}]}])
    assert parts.usage.prompt_tokens == response.usage.prompt_tokens
    assert parts.choices[0].message.content == response.choices[0].message.content
    ranker = client.chat.completions.create(model="dami-pref", messages=turns)
    alone = client.chat.completions.create(model="dami-pref",
                                           messages=[{"role": "user", "content": "12+7+19"}])
    assert ranker.model_extra["dami_pref"]["lambda"] == alone.model_extra["dami_pref"]["lambda"]


def test_every_common_request_shape_is_answered_or_refused_clearly(server):
    for chat, shapes in ((True, ANSWERED), (False, COMPLETIONS)):
        for name, extra in shapes.items():
            status, answer = ask_shape(server, chat, extra)
            assert status == 200, (name, answer)
            check_answer(name, extra, chat, answer)
    for path, prefix, refused in (
            ("/v1/chat/completions", '"messages": [{"role": "user", "content": "1+2"}], ', REFUSED),
            ("/v1/completions", '"prompt": "1+2", ', COMPLETIONS_REFUSED)):
        for fragment, named in refused.items():
            text = fragment if fragment.startswith(('"messages"', '"prompt"')) else \
                prefix + fragment
            status, answer = raw_post(server, path, '{"model": "dami-pref", ' + text + "}")
            assert status == 400, (fragment, answer)
            assert named in answer["error"]["message"] and answer["error"]["type"] == \
                "invalid_request_error", (fragment, answer)
    status, answer = raw_post(server, "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "1"}], "temperature": True, "top_p": 0,
         "colour": "red"}))
    assert status == 400 and all(f in answer["error"]["message"]
                                 for f in ("temperature", "top_p", "colour"))


def test_huge_bodies_and_texts_are_refused_before_tokenizing(server):
    """A body over --max_body_bytes is a 413 JSON error; a text that cannot fit the context is a
    400 naming it, found by its length (never tokenized whole)."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(server)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    connection.putrequest("POST", "/v1/completions")  # 18 MB announced, none of it sent
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(18 * 2 ** 20))
    connection.endheaders()
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 413 and "--max_body_bytes" in answer["error"]["message"], answer
    connection.close()
    long = "1+" * 500_000
    status, answer = raw_post(server, "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "system", "content": "Add."}, {"role": "user", "content": long}]}))
    assert status == 400 and "messages is 1,000,004 characters" in answer["error"]["message"]
    status, answer = raw_post(server, "/v1/completions", json.dumps(
        {"model": "dami-pref@0", "prompt": ["3+4", long]}))
    assert status == 400 and "prompt[1] is 1,000,000 characters" in answer["error"]["message"]
    assert metric(server, "dami_pref_requests_total") > 0


def test_logprobs_and_logit_bias_are_honoured(client):
    """Greedy: each token is its step's most likely, log-probabilities are ≤ 0 and sorted, the
    tokens spell the answer; a stream carries the same; a banned first token is never chosen."""
    ask = dict(model="dami-pref@0", messages=[{"role": "user", "content": "12+7+19"}],
               logprobs=True, top_logprobs=3)
    answer = client.chat.completions.create(**ask)
    entries = answer.choices[0].logprobs.content
    assert len(entries) == answer.usage.completion_tokens
    for entry in entries:
        ranked = [top.logprob for top in entry.top_logprobs]
        assert entry.top_logprobs[0].token == entry.token and entry.logprob == ranked[0]
        assert ranked == sorted(ranked, reverse=True) and all(lp <= 0 for lp in ranked)
        assert bytes(entry.bytes) == entry.token.encode()
    assert "".join(e.token for e in entries).startswith(answer.choices[0].message.content)
    streamed = [e for chunk in client.chat.completions.create(**ask, stream=True)
                for c in chunk.choices if c.logprobs for e in c.logprobs.content]
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in entries]
    completion = client.completions.create(model="dami-pref@0", prompt="12+7+19", logprobs=2,
                                           max_tokens=8)
    legacy = completion.choices[0].logprobs
    assert len(legacy.tokens) == len(legacy.token_logprobs) == completion.usage.completion_tokens
    assert legacy.text_offset == [sum(map(len, legacy.tokens[:i])) for i in range(len(legacy.tokens))]
    from transformers import AutoTokenizer

    from dami_pref.toy import TOY_INSTRUCT

    [token] = AutoTokenizer.from_pretrained(TOY_INSTRUCT).encode(entries[0].token,
                                                                 add_special_tokens=False)
    biased = client.chat.completions.create(**ask, logit_bias={str(token): -100})
    assert biased.choices[0].logprobs.content[0].token != entries[0].token


def test_completions_read_raw_text_and_take_lists_and_echo(client):
    from transformers import AutoTokenizer

    from dami_pref.toy import TOY_INSTRUCT

    tokenizer = AutoTokenizer.from_pretrained(TOY_INSTRUCT)
    chat = client.chat.completions.create(model="dami-pref@0",
                                          messages=[{"role": "user", "content": "12+7+19"}])
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "12+7+19"}],
                                             tokenize=False, add_generation_prompt=True)
    raw = client.completions.create(model="dami-pref@0", prompt=rendered)  # wrapped once only
    assert raw.usage.prompt_tokens == chat.usage.prompt_tokens
    assert raw.choices[0].text.strip() == chat.choices[0].message.content
    both = client.completions.create(model="dami-pref@0", prompt=[rendered, rendered],
                                     echo=True, max_tokens=8)
    assert [c.index for c in both.choices] == [0, 1]
    assert all(c.text.startswith(rendered) for c in both.choices)


def test_stop_ends_the_answer_on_this_engine(client):
    full = client.completions.create(model="dami-pref@1", prompt="17+3+12+9", max_tokens=60)
    text = full.choices[0].text
    stop = text[len(text) // 3: len(text) // 3 + 2]
    cut = client.completions.create(model="dami-pref@1", prompt="17+3+12+9", max_tokens=60,
                                    stop=[stop])
    assert cut.choices[0].text == text[:text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < full.usage.completion_tokens


def test_sampling_is_fresh_without_a_seed_and_repeats_with_one(client):
    def sample(**seed):
        return client.completions.create(model="dami-pref@1", prompt="17+3+12+9",
                                         temperature=1.5, max_tokens=30, **seed).choices[0].text

    assert len({sample() for _ in range(5)}) > 1
    assert len({sample(seed=7) for _ in range(3)}) == 1
    two = client.completions.create(model="dami-pref@1", prompt="17+3+12+9", n=2, seed=7,
                                    temperature=1.5, max_tokens=30)
    assert two.choices[0].text == sample(seed=7) and len(two.choices) == 2


def test_streaming_sends_tokens_as_they_are_decoded(client):
    """A long answer streamed: many events, the first well before the last."""
    started = time.perf_counter()
    arrivals, reasoning, content = [], "", ""
    stream = client.chat.completions.create(
        model="dami-pref@1", stream=True, max_tokens=200,
        messages=[{"role": "user", "content": "+".join(str(7 + i) for i in range(24))}])
    for chunk in stream:
        for c in chunk.choices:
            extra = c.delta.model_extra or {}
            if c.delta.content or extra.get("reasoning"):
                arrivals.append(time.perf_counter() - started)
            reasoning += extra.get("reasoning") or ""
            content += c.delta.content or ""
    assert len(arrivals) >= 20, len(arrivals)
    assert arrivals[0] < 0.4 * arrivals[-1], (arrivals[0], arrivals[-1])
    whole = client.chat.completions.create(
        model="dami-pref@1", max_tokens=200,
        messages=[{"role": "user", "content": "+".join(str(7 + i) for i in range(24))}])
    assert content == whole.choices[0].message.content
    assert reasoning == (whole.choices[0].message.model_extra["reasoning"] or "")


def test_langchain_and_litellm_clients(server):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="dami-pref@0.5", base_url=server + "/v1", api_key="x",
                     max_tokens=40, max_retries=0)
    answer = llm.invoke("12+7+19", stop=["="])
    assert isinstance(answer.content, str) and "=" not in answer.content
    turns = [SystemMessage("Add the numbers."), HumanMessage("3+4"), AIMessage("7"),
             HumanMessage("12+7+19")]
    assert llm.invoke(turns).usage_metadata["input_tokens"] > \
        llm.invoke("12+7+19").usage_metadata["input_tokens"]
    streamed = "".join(chunk.content for chunk in llm.stream("12+7+19"))
    assert streamed == llm.invoke("12+7+19").content
    assert len(llm.batch(["3+4", "5+6"])) == 2
    kwargs = dict(model="openai/dami-pref@0.5", api_base=server + "/v1", api_key="x",
                  max_tokens=40, messages=[{"role": "user", "content": "12+7+19"}])
    plain = litellm.completion(**kwargs)
    assert plain.choices[0].message.content
    stopped = litellm.completion(**kwargs, stop=["="])
    assert "=" not in stopped.choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in litellm.completion(**kwargs, stream=True)]
    assert "".join(pieces) == plain.choices[0].message.content
