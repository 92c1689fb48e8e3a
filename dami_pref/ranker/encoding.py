"""How the ranker reads a question: the one encoder shared by training and inference.

A ranker trained on one tokenisation and served with another scores text it never saw (for
instance a BOS token at serving time only). Both the training collator and ``LambdaRanker`` call
:class:`QuestionEncoder`, which renders the prompt exactly as the runtime does
(:func:`dami_pref.utils.prompts.render_prompt`), adds special tokens exactly once, pads on the
right and cuts long questions from the left, so a question's end survives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..utils.prompts import render_prompt, uses_chat_template
from ..utils.tokens import longest_token_chars


class QuestionEncoder:
    def __init__(self, tokenizer, prompt_template: str, max_length: int,
                 chat_template: bool = True) -> None:
        self.tokenizer = tokenizer
        self.prompt_template = prompt_template
        self.max_length = max_length
        self.chat_template = chat_template

    @property
    def add_special_tokens(self) -> bool:
        """A chat template writes its own special tokens; plain text gets the tokenizer's."""
        return not uses_chat_template(self.tokenizer, self.chat_template)

    def texts(self, questions: Sequence[str]) -> list[str]:
        """The prompts the ranker reads. A question longer than the ranker can read keeps only
        its end (more characters than ``max_length`` + 1 tokens can hold: the same tokens
        survive the cut from the left), so a huge question costs no more to tokenize."""
        keep = (self.max_length + 1) * longest_token_chars(self.tokenizer)
        return [render_prompt(q[-keep:], self.prompt_template, self.tokenizer, self.chat_template)
                for q in questions]

    def lengths(self, questions: Sequence[str]) -> list[int]:
        """Untruncated token counts, to tell how many questions a batch cuts."""
        ids = self.tokenizer(self.texts(questions),
                             add_special_tokens=self.add_special_tokens)["input_ids"]
        return [len(row) for row in ids]

    def __call__(self, questions: Sequence[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask``, right-padded, cut from the left."""
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"
        return dict(self.tokenizer(self.texts(questions), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt",
                                   add_special_tokens=self.add_special_tokens))
