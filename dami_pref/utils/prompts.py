"""How a question becomes the text a model reads: one rule for generation and for the ranker.

The prompt template wraps the question (e.g. to ask for ``\\boxed{}``); the tokenizer's chat
template, when there is one and it is wanted, turns it into a user turn followed by the
assistant marker. A chat template writes its own special tokens, so the tokenizer must not add
them again; without one, the tokenizer adds them as it always does (BOS for many models).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DamiPrefError


def check_prompt_template(template: str) -> str:
    if "{question}" not in template:
        raise DamiPrefError(f"prompt_template must contain '{{question}}': {template!r}")
    try:
        template.format(question="")
    except (IndexError, KeyError, ValueError) as err:
        raise DamiPrefError(f"prompt_template {template!r} cannot be filled in ({err}); write "
                            "literal braces as {{ and }}") from None
    return template


def uses_chat_template(tokenizer, chat_template: bool = True) -> bool:
    """Whether prompts go through the tokenizer's chat template."""
    return bool(chat_template and getattr(tokenizer, "chat_template", None))


def render_prompt(question: str, template: str, tokenizer, chat_template: bool = True) -> str:
    """The question as the model reads it: prompt template, then (optionally) the chat template."""
    text = template.format(question=question)
    if uses_chat_template(tokenizer, chat_template):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                             tokenize=False, add_generation_prompt=True)
    return text


def encode_prompts(questions: Sequence[str], template: str, tokenizer,
                   chat_template: bool = True) -> list[list[int]]:
    """Token ids of each rendered prompt, special tokens added exactly once."""
    texts = [render_prompt(q, template, tokenizer, chat_template) for q in questions]
    add_special = not uses_chat_template(tokenizer, chat_template)
    return tokenizer(texts, add_special_tokens=add_special)["input_ids"]


def encode_conversation(turns: Sequence[dict], template: str, tokenizer) -> list[int]:
    """Token ids of a whole conversation (system, user and assistant turns) through the chat
    template, as vLLM's server renders it; the prompt template wraps the last user turn, as it
    wrapped every question the ranker's rollouts asked. A role the template cannot render, or a
    tokenizer without a chat template, is a DamiPrefError."""
    if not uses_chat_template(tokenizer):
        raise DamiPrefError("this pair's tokenizer has no chat template: send the text to "
                            "/v1/completions instead")
    turns = [dict(turn) for turn in turns]
    last = max(i for i, turn in enumerate(turns) if turn["role"] == "user")
    turns[last]["content"] = template.format(question=turns[last]["content"])
    try:
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # noqa: BLE001 - jinja raises what the template chose to
        raise DamiPrefError(f"messages: the chat template cannot render them ({err})") from None
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_text(texts: Sequence[str], tokenizer) -> list[list[int]]:
    """Token ids of raw text (OpenAI's completions ``prompt``): no template of any kind, the
    tokenizer's own special tokens added as it always does."""
    return tokenizer(list(texts))["input_ids"]
