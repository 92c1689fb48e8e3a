"""DAMI-Conf: a zero-shot λ from the confidence of the two endpoint models.

The paper's exact formulas are not public; this is what dami-pref computes, and why.

1. The Instruct model (λ = 0) answers the question greedily in at most ``answer_tokens`` tokens.
   **Holistic ambiguity** HA is the mean entropy of its next-token distributions over that short
   answer: it reads the whole distribution, not only the chosen token, so it also sees
   near-ties that the chosen token's probability would hide.
2. The Thinking model (λ = 1) is shown the same prompt with an empty thinking span (Qwen3's
   switch for answering without thinking), followed by the Instruct model's answer, teacher
   forced. **Cognitive discrepancy** CD is the mean Jensen–Shannon divergence between the two
   models' next-token distributions over those answer tokens: where the slow model would have
   answered differently, the question likely needs it.
3. s = HA + CD, both in nats (an entropy and a divergence), so the sum keeps each signal at its
   natural scale; s is standardised on the validation set for the fit only. λ = σ(a·s + b): the
   two parameters a, b are fitted by scikit-learn's LogisticRegression on the validation problems,
   with the oracle λ*(q) as a soft label (each problem counted as λ* parts "think" and 1 − λ*
   parts "answer at once"). This is a cross-entropy fit of σ(a·s + b) to λ*, i.e. a calibrated
   sigmoid. The result is snapped to the nearest λ of the grid.

No ranker and no labelled training data are used: only the two models and a few hundred
validation problems to set two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..utils.tokens import end_token_ids, left_pad

DEFAULT_THINK_SKIP = "<think></think>"


@dataclass
class ConfFeatures:
    ambiguity: np.ndarray  # HA per question
    discrepancy: np.ndarray  # CD per question


@torch.no_grad()
def confidence_features(runtime, questions: Sequence[str], answer_tokens: int = 8,
                        think_skip: str = DEFAULT_THINK_SKIP,
                        batch_size: int = 64, kv_cache=None) -> ConfFeatures:
    """HA and CD for every question (two batched passes per batch: λ = 0, then λ = 1).

    ``kv_cache`` (a ``KVCacheOptions``) is the cache of the short Instruct answer, the same
    choice the rest of the evaluation generates with.
    """
    tok, model = runtime.tokenizer, runtime.model
    cache_kwargs = kv_cache.generate_kwargs() if kv_cache is not None else {}
    pad = tok.pad_token_id
    eos = end_token_ids(model, tok)
    skip_ids = tok(think_skip, add_special_tokens=False)["input_ids"] if think_skip else []
    ha, cd = [], []
    for at in range(0, len(questions), batch_size):
        prompts = runtime.encode_prompts(questions[at:at + batch_size])
        runtime.set_lambda(0.0)
        ids, mask = left_pad(prompts, pad)
        out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                             max_new_tokens=answer_tokens, do_sample=False, pad_token_id=pad,
                             output_logits=True, return_dict_in_generate=True,
                             top_k=None, top_p=None, temperature=None, **cache_kwargs)
        generated = out.sequences[:, ids.shape[1]:].tolist()
        logp_i = torch.stack(out.logits, dim=1).float().log_softmax(-1)  # [B, steps, V]
        answers = []
        for row in generated:
            end = next((j for j, t in enumerate(row) if t in eos), len(row) - 1)
            answers.append(row[:end + 1])
        runtime.set_lambda(1.0)
        full = [p + skip_ids + a for p, a in zip(prompts, answers)]
        ids_t, mask_t = left_pad(full, pad)
        logits_t = model(input_ids=ids_t.to(model.device),
                         attention_mask=mask_t.to(model.device)).logits.float()
        width = ids_t.shape[1]
        for b, answer in enumerate(answers):
            n = len(answer)
            p_i = logp_i[b, :n]
            # positions predicting each answer token: the n positions before the last n tokens
            p_t = logits_t[b, width - n - 1:width - 1].log_softmax(-1)
            ha.append(float(-(p_i.exp() * p_i).sum(-1).mean()))
            m = torch.logaddexp(p_i, p_t) - math.log(2.0)
            js = 0.5 * ((p_i.exp() * (p_i - m)).sum(-1) + (p_t.exp() * (p_t - m)).sum(-1))
            cd.append(float(js.clamp_min(0).mean()))
    return ConfFeatures(np.array(ha), np.array(cd))


@dataclass
class ConfCalibration:
    """σ(a·s + b) over the standardised s = HA + CD (nats); fitted on validation problems."""

    a: float
    b: float
    mean: float
    std: float

    @staticmethod
    def raw(features: ConfFeatures) -> np.ndarray:
        return features.ambiguity + features.discrepancy

    def signal(self, features: ConfFeatures) -> np.ndarray:
        return (self.raw(features) - self.mean) / self.std

    def lam(self, features: ConfFeatures) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * self.signal(features) + self.b)))

    def select(self, features: ConfFeatures, grid: Sequence[float]) -> list[float]:
        grid_arr = np.asarray(grid)
        return [float(grid_arr[np.abs(grid_arr - x).argmin()]) for x in self.lam(features)]

    @classmethod
    def fit(cls, features: ConfFeatures, oracle_lams: Sequence[float]) -> "ConfCalibration":
        from sklearn.linear_model import LogisticRegression

        target = np.asarray(oracle_lams, dtype=float)
        raw = cls.raw(features)
        stats = dict(mean=float(raw.mean()), std=float(raw.std() or 1.0))
        s = cls(0.0, 0.0, **stats).signal(features).reshape(-1, 1)
        x = np.vstack([s, s])
        y = np.concatenate([np.ones(len(s)), np.zeros(len(s))])
        weight = np.concatenate([target, 1.0 - target])
        if weight[y == 1].sum() == 0 or weight[y == 0].sum() == 0:
            # every validation problem wants the same end: a constant λ
            constant = 8.0 if weight[y == 1].sum() > 0 else -8.0
            return cls(0.0, constant, **stats)
        model = LogisticRegression(C=1e4, max_iter=1000)
        model.fit(x, y, sample_weight=weight + 1e-12)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]), **stats)
