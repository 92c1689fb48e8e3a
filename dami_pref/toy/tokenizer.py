"""The toy pair's character-level tokenizer and chat template.

One token per character (printable ASCII), a few role and end markers as special tokens, and
``<think>`` / ``</think>`` as atomic added tokens that decoding keeps (as in Qwen3, they are not
"special" in the skip-on-decode sense, so completions keep their thinking span).
"""

from __future__ import annotations

import string

PAD, SYSTEM, USER, ASSISTANT, END, UNK = ("<|pad|>", "<|system|>", "<|user|>", "<|assistant|>",
                                          "<|end|>", "<unk>")
SPECIAL_TOKENS = [PAD, SYSTEM, USER, ASSISTANT, END, UNK]
THINK_TOKENS = ["<think>", "</think>"]
CHARACTERS = [c for c in string.printable if c not in "\x0b\x0c\r"]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}<|system|>{{ message['content'] }}<|end|>"
    "{%- elif message['role'] == 'user' -%}<|user|>{{ message['content'] }}<|end|>"
    "{%- elif message['role'] == 'assistant' -%}<|assistant|>{{ message['content'] }}<|end|>"
    "{%- else -%}{{ raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def build_tokenizer():
    """A transformers fast tokenizer over the character vocabulary, with the chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + THINK_TOKENS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # (?m) is Oniguruma's dot-matches-newline: every character, newlines included, is a piece.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"(?m)."), behavior="isolated")
    core.decoder = decoders.Fuse()  # join characters back without spaces
    core.add_special_tokens([AddedToken(t, special=True, normalized=False)
                             for t in SPECIAL_TOKENS])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=END,
                                        unk_token=UNK, padding_side="left",
                                        model_max_length=512)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
