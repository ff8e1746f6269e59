"""ODIN reward model: one backbone, two scalar heads (quality and length); the quality head is served.

Self-contained (torch and transformers only): `save_pretrained` copies this file into every checkpoint and
writes `auto_map`, so a checkpoint loads on a machine without this project:

    AutoModelForSequenceClassification.from_pretrained(path_or_hub_id, trust_remote_code=True)

Importing `odin_rm` registers the classes with the Auto classes, so inside the project no flag is needed.

Layout. `model` is the backbone (any `AutoModel` decoder: Llama, Gemma, Qwen, Mistral, ...), loaded from the
same "model.*" weights a causal LM or a sequence classifier carries. `score` is one bias-free linear layer
with a row per head, in `config.head_names` order: row 0 quality, row 1 length. The reward is read at the
last attended token. `forward` returns:

- `logits` (batch, 1): the served head (`config.served_head`), so generic reward-model code (TRL, our
  judges, RewardBench-style pipelines) reads the quality reward;
- `head_logits` (batch, n_heads): every head, for training (r = quality + length) and for analysis;
- `head_weight` (n_heads, hidden), only with `return_head_weight=True`: a copy of the head weights taken
  inside the forward pass, so the orthogonality term also sees full weights under DeepSpeed ZeRO-3.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

HEAD_NAMES = ("quality", "length")


class OdinConfig(PretrainedConfig):
    """`text_config`: the backbone's config. `served_head`: the head whose reward `logits` carries (and that
    judges, servers and RL read). `rm_family` "odin" makes the checkpoint self-describing."""

    model_type = "odin_rm"
    sub_configs = {"text_config": AutoConfig}

    def __init__(self, text_config=None, head_names=HEAD_NAMES, served_head: str = "quality",
                 rm_family: str = "odin", num_labels: int = 1, **kwargs):
        if isinstance(text_config, dict):
            text_config = dict(text_config)
            text_config = AutoConfig.for_model(text_config.pop("model_type"), **text_config)
        self.text_config = text_config
        self.head_names = list(head_names)
        if served_head not in self.head_names:
            raise ValueError(f"served_head {served_head!r} is not one of the heads {self.head_names}")
        self.served_head = served_head
        self.rm_family = rm_family
        # One served reward per sequence: what TRL's RewardTrainer and sequence-classification code expect.
        super().__init__(num_labels=num_labels, **kwargs)

    @property
    def served_head_index(self) -> int:
        return self.head_names.index(self.served_head)

    @property
    def hidden_size(self) -> int:  # read by DeepSpeed's "auto" ZeRO-3 bucket sizes
        return self.text_config.hidden_size


class OdinHeads(nn.Linear):
    """The heads as one linear layer (a plain `nn.Linear` to callers that read `model.score(hidden)`, and the
    module LoRA keeps fully trainable as "score"); `return_weight=True` also returns a copy of the weights."""

    def forward(self, hidden: torch.Tensor, return_weight: bool = False):
        out = super().forward(hidden)
        return (out, self.weight.clone()) if return_weight else out


@dataclass
class OdinOutput(ModelOutput):
    """A reward model returns no key/value cache, so the output has no cache field: transformers renames that
    field under its output classes (`past_key_values` became `cache` in 5.24), and a field of that name breaks
    the dataclass there. Only names transformers has kept stable for years appear here."""

    logits: torch.Tensor | None = None
    head_logits: torch.Tensor | None = None
    head_weight: torch.Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


class OdinForSequenceClassification(PreTrainedModel):
    config_class = OdinConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = []
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\."]  # the head of the causal LM it starts from

    def __init__(self, config: OdinConfig):
        super().__init__(config)
        self.model = AutoModel.from_config(config.text_config)
        self.score = OdinHeads(config.text_config.hidden_size, len(config.head_names), bias=False)
        self._no_split_modules = list(getattr(self.model, "_no_split_modules", None) or [])
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, OdinHeads):
            std = getattr(self.config.text_config, "initializer_range", None) or 0.02
            module.weight.normal_(mean=0.0, std=std)
        else:
            super()._init_weights(module)

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, use_cache=None,
                return_head_weight: bool = False, labels=None, **kwargs):
        """`use_cache` is accepted and ignored: a reward is read once per sequence, so no cache is built (the
        backbone's cache argument is named differently across transformers versions; it passes via kwargs)."""
        if labels is not None:
            raise ValueError("ODIN is trained with odin_rm/train.py's losses; `labels` are not supported")
        kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "return_dict"}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         inputs_embeds=inputs_embeds, use_cache=False, **kwargs)
        hidden = out.last_hidden_state
        last = self._last_positions(input_ids, attention_mask, hidden)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        if return_head_weight:
            heads, weight = self.score(pooled, return_weight=True)
        else:
            heads, weight = self.score(pooled), None
        served = self.config.served_head_index
        return OdinOutput(logits=heads[:, served:served + 1], head_logits=heads, head_weight=weight,
                          hidden_states=getattr(out, "hidden_states", None), attentions=getattr(out, "attentions", None))

    def _last_positions(self, input_ids, attention_mask, hidden) -> torch.Tensor:
        """Index of the last real token of each row (right or left padding): the rightmost attended position,
        else the rightmost non-pad token, else the last position."""
        length = hidden.shape[1]
        if attention_mask is not None and attention_mask.shape[1] == length:
            mask = attention_mask
        elif attention_mask is None and input_ids is not None and self.config.pad_token_id is not None:
            mask = input_ids != self.config.pad_token_id
        else:  # a cached prefix makes the mask longer than the new tokens: read the last one
            return torch.full((hidden.shape[0],), length - 1, dtype=torch.long, device=hidden.device)
        positions = torch.arange(length, device=hidden.device)
        return (mask.to(hidden.device).long() * positions).argmax(dim=-1)


def odin_from_backbone(name_or_path: str, head_names=HEAD_NAMES, served_head: str = "quality", **kwargs):
    """An ODIN model whose backbone is the pretrained `name_or_path` (a causal LM, a base model, or a
    one-label reward model) and whose heads are new: from_pretrained loads "model.*" and initialises `score`
    (seed torch first for a repeatable head). kwargs go to from_pretrained (dtype, revision,
    attn_implementation, ...)."""
    revision = kwargs.get("revision")
    text_config = AutoConfig.from_pretrained(name_or_path, revision=revision)
    config = OdinConfig(text_config=text_config, head_names=head_names, served_head=served_head)
    if getattr(text_config, "pad_token_id", None) is not None:
        config.pad_token_id = text_config.pad_token_id
    return OdinForSequenceClassification.from_pretrained(name_or_path, config=config, **kwargs)


def register_auto_classes() -> None:
    """AutoConfig / AutoModel / AutoModelForSequenceClassification know "odin_rm"; save_pretrained copies this
    file into the checkpoint and writes auto_map (for trust_remote_code loads)."""
    from transformers import AutoModelForSequenceClassification

    with contextlib.suppress(ValueError):  # already registered (a second import under another module name)
        AutoConfig.register(OdinConfig.model_type, OdinConfig)
    for auto in (AutoModel, AutoModelForSequenceClassification):
        with contextlib.suppress(ValueError):
            auto.register(OdinConfig, OdinForSequenceClassification)
    OdinConfig.register_for_auto_class()
    OdinForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
