"""ArmoRM as one Hugging Face model: backbone + per-objective regression + prompt-conditioned gating.

Self-contained (torch and transformers only): `save_pretrained` copies this file into the checkpoint, so
`AutoModel.from_pretrained(ckpt, trust_remote_code=True)` loads it from the Hub without this project.

    score = logit_scale * sum_k gating_k(prompt) * (rewards @ reward_transform)_k

- `rewards` [B, K]: one linear regression per objective on the last token's final hidden state (stage 1);
- `reward_transform` [K, K]: the verbosity debiasing, r'_k = r_k - penalty_k * r_verbosity (identity
  elsewhere; the verbosity objective itself is mapped to 0), fixed after stage 2's search;
- `gating_output` [B, K]: softmax **over the objectives** of an MLP on the prompt's last-token hidden
  state (the end of the generation prompt), divided by a temperature; sums to 1 per row.
The output carries ArmoRM's published fields: rewards, gating_output, score (plus the two hidden states).

The heads (regression, gating, logit_scale, reward_transform) are kept and computed in fp32 whatever the
backbone's dtype: a model loaded with dtype=bfloat16 has a bf16 backbone and fp32 heads
(`_keep_in_fp32_modules_strict`), and `heads` casts the two hidden states to fp32, so a bf16 checkpoint
scores exactly what stage 2 computed in fp32 from the same (bf16) hidden states.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


class ArmoRMConfig(PretrainedConfig):
    model_type = "armo_rm"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(self, backbone_config=None, attributes=(), gating_hidden_dim: int = 256, gating_n_hidden: int = 2,
                 gating_temperature: float = 10.0, gating_dropout: float = 0.0, prompt_end_token_ids=None,
                 verbosity_attribute: str | None = None, rm_family: str = "armo", **kwargs):
        if isinstance(backbone_config, dict):
            backbone_config = AutoConfig.for_model(**backbone_config)
        self.backbone_config = backbone_config
        self.attributes = list(attributes)
        self.gating_hidden_dim = gating_hidden_dim
        self.gating_n_hidden = gating_n_hidden
        self.gating_temperature = gating_temperature
        self.gating_dropout = gating_dropout
        # token ids that end the generation prompt ("<|im_start|>assistant\n"): the prompt embedding is read at
        # their last occurrence when the caller does not pass prompt_end_index
        self.prompt_end_token_ids = list(prompt_end_token_ids or [])
        self.verbosity_attribute = verbosity_attribute
        self.rm_family = rm_family
        super().__init__(**kwargs)

    def get_text_config(self, *args, **kwargs):
        return self.backbone_config.get_text_config(*args, **kwargs) if self.backbone_config else self


class GatingNetwork(nn.Module):
    """MLP -> softmax over the K objectives (dim=-1), with a fixed temperature."""

    def __init__(self, in_features: int, n_objectives: int, hidden_dim: int, n_hidden: int, temperature: float,
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_hidden):
            layers += [nn.Linear(in_features, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
            in_features = hidden_dim
        layers.append(nn.Linear(in_features, n_objectives))
        self.mlp = nn.Sequential(*layers)
        self.temperature = temperature

    def forward(self, prompt_hidden: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.mlp(prompt_hidden) / self.temperature, dim=-1)


@dataclass
class ArmoRMOutput(ModelOutput):
    score: torch.Tensor | None = None
    rewards: torch.Tensor | None = None
    gating_output: torch.Tensor | None = None
    hidden_state: torch.Tensor | None = None
    prompt_hidden_state: torch.Tensor | None = None


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, for right or left padding."""
    return attention_mask.shape[1] - 1 - attention_mask.flip(1).long().argmax(dim=1)


def find_prompt_end(input_ids: torch.Tensor, marker: list[int]) -> torch.Tensor:
    """Per row, the index of the last token of the last occurrence of `marker`."""
    if not marker:
        raise ValueError("config.prompt_end_token_ids is empty: pass prompt_end_index to forward()")
    n = len(marker)
    target = torch.tensor(marker, device=input_ids.device)
    windows = input_ids.unfold(1, n, 1)  # [B, L - n + 1, n]
    hits = (windows == target).all(dim=-1)
    if not bool(hits.any(dim=1).all()):
        raise ValueError("a row has no generation-prompt marker (was it rendered with the chat template?); "
                         "pass prompt_end_index")
    last = hits.shape[1] - 1 - hits.flip(1).long().argmax(dim=1)
    return last + n - 1


class ArmoRMModel(PreTrainedModel):
    config_class = ArmoRMConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = False
    _no_split_modules = []
    # Loaded in fp32 even when the backbone is loaded in bf16/fp16 (the strict list covers both; the plain one is
    # what older transformers read for fp16). Names as parameter-name parts: regression.*, gating.*, ...
    _keep_in_fp32_modules_strict = ["regression", "gating", "logit_scale", "reward_transform"]
    _keep_in_fp32_modules = ["regression", "gating", "logit_scale", "reward_transform"]

    def __init__(self, config: ArmoRMConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.backbone_config)
        hidden, k = config.backbone_config.get_text_config().hidden_size, len(config.attributes)
        self.regression = nn.Linear(hidden, k)
        self.gating = GatingNetwork(hidden, k, config.gating_hidden_dim, config.gating_n_hidden,
                                    config.gating_temperature, config.gating_dropout)
        self.logit_scale = nn.Parameter(torch.ones(1))
        self.register_buffer("reward_transform", torch.eye(k))
        self.post_init()

    def _init_weights(self, module):
        if module is self:
            with torch.no_grad():
                self.logit_scale.fill_(1.0)
                self.reward_transform.copy_(torch.eye(self.reward_transform.shape[0]))
        elif isinstance(module, nn.Linear) and not any(module is m for m in self.backbone.modules()):
            module.reset_parameters()
        else:
            super()._init_weights(module)

    @property
    def dtype(self) -> torch.dtype:
        """The backbone's dtype (the heads are fp32 whatever it is): what save_pretrained records in config.json,
        so a checkpoint exported from a bf16 backbone loads its backbone in bf16 by default."""
        return self.backbone.dtype

    def heads_to_fp32(self) -> None:
        """The heads back in fp32 after a cast of the whole model (model.to(torch.bfloat16) rounds them: a
        checkpoint keeps them exact only when loaded with dtype=..., which leaves them in fp32)."""
        self.regression.float()
        self.gating.float()
        self.logit_scale.data = self.logit_scale.data.float()
        self.reward_transform = self.reward_transform.float()

    def heads(self, hidden: torch.Tensor, prompt_hidden: torch.Tensor) -> ArmoRMOutput:
        """Rewards, gating and score from the two hidden states (what stages 1 and 2 train on), in fp32."""
        if any(t.dtype != torch.float32 for t in (self.regression.weight, self.logit_scale, self.reward_transform,
                                                   *self.gating.parameters())):
            self.heads_to_fp32()
        hidden, prompt_hidden = hidden.float(), prompt_hidden.float()
        with torch.autocast(hidden.device.type, enabled=False):  # no bf16 matmuls under a caller's autocast
            rewards = self.regression(hidden)
            gating = self.gating(prompt_hidden)
            score = self.logit_scale * (gating * (rewards @ self.reward_transform)).sum(dim=-1)
        return ArmoRMOutput(score=score, rewards=rewards, gating_output=gating, hidden_state=hidden,
                            prompt_hidden_state=prompt_hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                prompt_end_index: torch.Tensor | None = None, **kwargs) -> ArmoRMOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                               **kwargs).last_hidden_state
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        if prompt_end_index is None:
            prompt_end_index = find_prompt_end(input_ids, self.config.prompt_end_token_ids)
        hidden = states[rows, last_token_index(attention_mask)].float()
        prompt_hidden = states[rows, prompt_end_index.to(input_ids.device)].float()
        return self.heads(hidden, prompt_hidden)
