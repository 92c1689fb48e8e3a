"""Training and serving read a question the same way: one encoder, the same token ids.

A ranker trained on ids without BOS and served with BOS scores text it never saw. The training
collator and ``LambdaRanker`` both go through ``ranker.encoding.QuestionEncoder``; these tests pin
that they agree, for a tokenizer that adds BOS and has no chat template, for the toy tokenizer,
and for a tokenizer with a chat template, and that generation renders prompts the same way.
"""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import tiny_config

QUESTIONS = ["12+7+19", "3+4", "what is 1+1?"]


def bos_tokenizer():
    """The toy tokenizer turned into one that adds a BOS token and has no chat template."""
    from tokenizers import processors

    from dami_pref.toy.tokenizer import build_tokenizer

    tok = build_tokenizer()
    bos = "<|system|>"
    tok.bos_token = bos
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, tok.convert_tokens_to_ids(bos))])
    tok.chat_template = None
    assert tok("3+4")["input_ids"][0] == tok.convert_tokens_to_ids(bos)  # it really adds BOS
    return tok


def toy_tokenizer():
    from dami_pref.toy.tokenizer import build_tokenizer

    return build_tokenizer()


def chat_tokenizer():
    """A tokenizer whose chat template writes its own BOS-like marker (as Qwen3's and Llama's do)."""
    tok = bos_tokenizer()
    tok.chat_template = ("<|system|>{% for m in messages %}<|user|>{{ m['content'] }}<|end|>"
                         "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    return tok


def ranker_for(tokenizer, prompt_template: str = "{question}", chat_template: bool = True):
    from transformers import Qwen3Model

    from dami_pref.ranker.inference import LambdaRanker
    from dami_pref.ranker.model import RankerModel, RankerSpec

    torch.manual_seed(0)
    backbone = Qwen3Model(tiny_config(len(tokenizer)))
    spec = RankerSpec(backbone="tiny", grid=[0.0, 0.5, 1.0], prompt_template=prompt_template,
                      chat_template=chat_template, max_length=64, hidden_size=32)
    return LambdaRanker(RankerModel(backbone, spec).eval(), tokenizer, {})


@pytest.mark.parametrize("make", [bos_tokenizer, toy_tokenizer, chat_tokenizer])
@pytest.mark.parametrize("chat_template", [True, False])
def test_training_and_serving_see_the_same_ids(make, chat_template):
    from dami_pref.ranker.data import ProblemExample, RankerCollator
    from dami_pref.ranker.encoding import QuestionEncoder

    template = "Q: {question}"
    ranker = ranker_for(make(), template, chat_template)
    # training builds its own encoder from the spec, on its own copy of the tokenizer
    encoder = QuestionEncoder(copy.deepcopy(make()), template, 64, chat_template)
    examples = [ProblemExample(f"p{i}", q, [(0, 1)], [1.0], 0, [1.0] * 3, [1.0] * 3)
                for i, q in enumerate(QUESTIONS)]
    trained = RankerCollator(encoder, [0.0, 0.5, 1.0])(examples)
    served = ranker._encode(QUESTIONS)
    assert torch.equal(trained["input_ids"], served["input_ids"].cpu())
    assert torch.equal(trained["attention_mask"], served["attention_mask"].cpu())


def test_special_tokens_come_exactly_once():
    from dami_pref.ranker.encoding import QuestionEncoder

    bos = bos_tokenizer()
    bos_id = bos.convert_tokens_to_ids("<|system|>")
    for tok, expected_first in ((bos, bos_id), (chat_tokenizer(), bos_id)):
        ids = QuestionEncoder(tok, "{question}", 64)(["3+4"])["input_ids"][0].tolist()
        assert ids[0] == expected_first and ids.count(bos_id) == 1
    # plain text through the toy tokenizer (no BOS): nothing is added
    toy = toy_tokenizer()
    ids = QuestionEncoder(toy, "{question}", 64, chat_template=False)(["3+4"])["input_ids"][0]
    assert toy.decode(ids.tolist()) == "3+4"


@pytest.mark.parametrize("make", [bos_tokenizer, toy_tokenizer, chat_tokenizer])
def test_generation_renders_prompts_like_the_ranker(make):
    """The runtime's prompt ids are the ranker's (chat template on, same template)."""
    from transformers import Qwen3ForCausalLM

    from dami_pref.ranker.encoding import QuestionEncoder
    from dami_pref.runtime import InterpolationRuntime

    tok = make()
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(tiny_config(len(tok)))
    runtime = InterpolationRuntime.from_models(model, copy.deepcopy(model), tok,
                                               prompt_template="Q: {question}")
    encoder = QuestionEncoder(copy.deepcopy(make()), "Q: {question}", 64)
    for question, ids in zip(QUESTIONS, runtime.encode_prompts(QUESTIONS)):
        assert encoder([question])["input_ids"][0].tolist() == ids
