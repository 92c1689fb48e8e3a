"""The ranker is a standard sequence classifier: one logit per candidate λ.

``AutoModelForSequenceClassification`` over the backbone, with LoRA on its linear layers and
its ``score`` layer trained in full (peft's ``modules_to_save``), reads the question once and
pools the last real token, as every Hugging Face reward model does. Its labels are the grid:
``id2label = {0: "0", 1: "0.1", …}``. So an exported ranker loads with one
``AutoModelForSequenceClassification.from_pretrained`` call, the Hub's widgets understand it,
and vLLM's pooling runner serves it.

Per objective, the logits mean:
  pref, acc   one score per grid λ (acc: the logit of "λ answers right");
  pred        one logit: λ̂ = σ(logit) (DAMI-Pred);
  route       one logit: "send to Thinking" (DAMI-Routing).
:func:`RankerModel.forward` returns them under the names the losses and the selection use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .option_checks import OBJECTIVES

HEAD_MODULES = ("score", "classifier")  # the classifier layer's usual names (peft's too)


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"

    def peft_config(self):
        from peft import LoraConfig, TaskType

        return LoraConfig(task_type=TaskType.SEQ_CLS, r=self.r, lora_alpha=self.alpha,
                          lora_dropout=self.dropout, target_modules=self.target_modules,
                          bias="none")


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
    hidden_size: int = 0
    lora: LoraSettings = field(default_factory=LoraSettings)

    @property
    def labels(self) -> list[str]:
        """The classifier's labels: the grid's λ values, or the one output of pred / route."""
        if self.objective in ("pred", "route"):
            return [{"pred": "lambda_hat", "route": "think"}[self.objective]]
        return [f"{lam:g}" for lam in self.grid]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RankerSpec":
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["lora"] = LoraSettings(**data.get("lora", {}))
        return cls(**data)


class RankerModel(nn.Module):
    """The classifier (with LoRA, or merged), and the objective's reading of its logits."""

    def __init__(self, backbone: nn.Module, spec: RankerSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = spec
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

    def head_parameters(self) -> list[nn.Parameter]:
        """The classifier layer's trainable parameters (its own learning rate)."""
        return [p for name, p in self.named_parameters() if p.requires_grad
                and any(f".{m}." in f".{name}" for m in HEAD_MODULES)]

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        return {"scores": logits, "pred": torch.sigmoid(logits[:, 0]), "route": logits[:, 0]}


def label_maps(spec: RankerSpec) -> dict:
    labels = spec.labels
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)}}


def load_classifier(name_or_path: str, spec: RankerSpec, dtype: torch.dtype | None = None,
                    trust_remote_code: bool = False):
    """The backbone as a sequence classifier with the spec's labels, and its tokenizer
    (safetensors only; a pad token is set, since the classifier pools the last non-pad one)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from ..errors import DamiPrefError
    from ..utils.hub import local_or_hub

    folder = local_or_hub(name_or_path, what="backbone")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized": it is, on purpose
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code,
            **label_maps(spec))
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"cannot load the ranker backbone {name_or_path}: {err}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def build_ranker(spec: RankerSpec, dtype: torch.dtype | None = None,
                 trust_remote_code: bool = False, seed: int = 0, peft_config=None):
    """A fresh ranker: the classifier with new LoRA adapters and a freshly initialised score.

    ``peft_config`` (e.g. TRL's ``get_peft_config(model_args)``) replaces ``spec.lora``'s."""
    from peft import get_peft_model

    from ..errors import DamiPrefError

    if spec.objective not in OBJECTIVES:
        raise DamiPrefError(f"unknown objective {spec.objective!r}; choose one of {OBJECTIVES}")
    torch.manual_seed(seed)  # the new score layer is drawn inside from_pretrained
    classifier, tokenizer = load_classifier(spec.backbone, spec, dtype, trust_remote_code)
    spec.hidden_size = int(classifier.config.hidden_size)
    config = peft_config or spec.lora.peft_config()
    if str(getattr(config, "task_type", "")).split(".")[-1] != "SEQ_CLS":
        raise DamiPrefError(f"the ranker is a sequence classifier: --lora_task_type must be "
                            f"SEQ_CLS, got {config.task_type}")
    try:
        backbone = get_peft_model(classifier, config)
    except ValueError as err:
        raise DamiPrefError(f"LoRA settings do not fit the backbone: {err}") from None
    return RankerModel(backbone, spec), tokenizer
