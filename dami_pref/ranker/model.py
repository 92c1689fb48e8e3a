"""The λ-conditioned ranker: a LoRA-adapted backbone encodes the question once, a small head
scores every candidate λ from that one encoding.

score r(q, λ) = w · GELU(U·LN(h_q) + V·φ(λ)) + b, with h_q the backbone's state at the prompt's
last real token and φ(λ) the features of :func:`lambda_features`. The same head also carries
the DAMI-Pred output (λ̂ = σ(w_p · U·LN(h_q))) and the DAMI-Routing logit, so the three objectives
share backbone, data and code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .features import N_FEATURES, lambda_features, last_token_pool

OBJECTIVES = ("pref", "acc", "pred", "route")


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"

    def peft_config(self):
        from peft import LoraConfig, TaskType

        return LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=self.r,
                          lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, bias="none")


@dataclass
class RankerSpec:
    """Everything needed to rebuild a ranker around its backbone (stored in dami_pref.json)."""

    backbone: str
    grid: list[float]
    objective: str = "pref"
    prompt_template: str = "{question}"
    chat_template: bool = True  # render through the backbone's chat template when it has one
    max_length: int = 512
    truncation: str = "left"  # keep a question's end, where the actual question usually is
    pooling: str = "last_token"
    head_width: int = 128
    hidden_size: int = 0
    lora: LoraSettings = field(default_factory=LoraSettings)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RankerSpec":
        data = dict(data)
        data["lora"] = LoraSettings(**data.get("lora", {}))
        return cls(**data)


class LambdaHead(nn.Module):
    def __init__(self, hidden_size: int, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.question = nn.Linear(hidden_size, width)
        self.lam = nn.Linear(N_FEATURES, width)
        self.score = nn.Sequential(nn.GELU(), nn.Linear(width, 1))
        self.pred = nn.Linear(width, 1)
        self.route = nn.Linear(width, 1)

    def encode(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.question(self.norm(pooled.float()))

    def scores(self, encoded: torch.Tensor, lams: torch.Tensor) -> torch.Tensor:
        """r(q, λ) for every question (rows) and every λ (columns)."""
        lam_part = self.lam(lambda_features(lams.float()))
        return self.score(encoded[:, None, :] + lam_part[None, :, :]).squeeze(-1)


class RankerModel(nn.Module):
    """Backbone (with LoRA) + head. ``forward`` returns scores over the grid and both extras."""

    def __init__(self, backbone: nn.Module, spec: RankerSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = spec
        self.head = LambdaHead(spec.hidden_size, spec.head_width)
        self.register_buffer("grid", torch.tensor(spec.grid, dtype=torch.float32),
                             persistent=False)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None,
                                        every_n_layers: int = 1, offload: bool = False) -> None:
        """What ``Trainer`` calls for ``--gradient_checkpointing``: checkpoint the backbone."""
        base = self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") \
            else self.backbone
        base.activation_checkpointing_enable(
            activation_checkpointing_kwargs=activation_checkpointing_kwargs,
            every_n_layers=every_n_layers, offload=offload)
        base.enable_input_require_grads()  # LoRA: the frozen embeddings must pass gradients on

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return self.head.encode(last_token_pool(hidden, attention_mask))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                lams: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        encoded = self.encode(input_ids, attention_mask)
        grid = self.grid if lams is None else lams
        return {"scores": self.head.scores(encoded, grid),
                "pred": torch.sigmoid(self.head.pred(encoded).squeeze(-1)),
                "route": self.head.route(encoded).squeeze(-1)}


def load_backbone(name_or_path: str, dtype: torch.dtype | None = None,
                  trust_remote_code: bool = False):
    """The backbone without its LM head (AutoModel), safetensors only."""
    from transformers import AutoModel, AutoTokenizer

    from ..errors import DamiPrefError
    from ..utils.hub import local_or_hub

    folder = local_or_hub(name_or_path, what="backbone")
    try:
        model = AutoModel.from_pretrained(folder, dtype=dtype, use_safetensors=True,
                                          trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"cannot load the ranker backbone {name_or_path}: {err}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def build_ranker(spec: RankerSpec, dtype: torch.dtype | None = None,
                 trust_remote_code: bool = False, seed: int = 0, peft_config=None):
    """A fresh ranker: backbone with new LoRA adapters and a freshly initialised head.

    ``peft_config`` (e.g. TRL's ``get_peft_config(model_args)``) replaces ``spec.lora``'s."""
    from peft import get_peft_model

    from ..errors import DamiPrefError

    if spec.objective not in OBJECTIVES:
        raise DamiPrefError(f"unknown objective {spec.objective!r}; choose one of {OBJECTIVES}")
    backbone, tokenizer = load_backbone(spec.backbone, dtype, trust_remote_code)
    spec.hidden_size = int(backbone.config.hidden_size)
    torch.manual_seed(seed)
    try:
        backbone = get_peft_model(backbone, peft_config or spec.lora.peft_config())
    except ValueError as err:
        raise DamiPrefError(f"LoRA settings do not fit the backbone: {err}") from None
    model = RankerModel(backbone, spec)
    freeze_unused_head(model.head, spec.objective)
    return model, tokenizer


# head parts each objective trains; the rest stay frozen (DDP refuses parameters without grads)
_HEAD_PARTS = {"pref": ("norm.", "question.", "lam.", "score."),
               "acc": ("norm.", "question.", "lam.", "score."),
               "pred": ("norm.", "question.", "pred."),
               "route": ("norm.", "question.", "route.")}


def freeze_unused_head(head: LambdaHead, objective: str) -> None:
    for name, param in head.named_parameters():
        param.requires_grad_(name.startswith(_HEAD_PARTS[objective]))
