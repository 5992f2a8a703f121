"""The narrow pretraining predictor: context embeddings + learned mask tokens -> target embeddings.

Parameter names and shapes are those of `transformers`' `VJEPA2Predictor`
(`embeddings.predictor_embeddings`, `embeddings.mask_tokens`, `layer.*`, `layernorm`, `proj`), so a
pretrained (encoder, predictor) pair exports as one `VJEPA2Model`. Unlike `VJEPA2Predictor`, it takes
the context encoder's outputs for the visible tokens only (the encoder never saw the rest).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import VJEPA2Config
from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Layer, VJEPA2PredictorEmbeddings

from vjepa_ac.models.encoder import init_vit_weights


class MaskedPredictor(nn.Module):
    """Predict the encoder's embeddings at `target_ids` from the context tokens at `context_ids`.

    Mask tokens are learned and zero-initialised (one per mask set, `pred_num_mask_tokens`), placed
    at the target positions; the 3D RoPE of every block tells each token where it sits.
    """

    def __init__(self, config: VJEPA2Config):
        super().__init__()
        config = copy.deepcopy(config)
        config._attn_implementation = "sdpa"
        self.config = config
        self.embeddings = VJEPA2PredictorEmbeddings(config)
        self.layer = nn.ModuleList([
            VJEPA2Layer(config, hidden_size=config.pred_hidden_size,
                        num_attention_heads=config.pred_num_attention_heads, mlp_ratio=config.pred_mlp_ratio)
            for _ in range(config.pred_num_hidden_layers)
        ])
        self.layernorm = nn.LayerNorm(config.pred_hidden_size, eps=config.layer_norm_eps)
        self.proj = nn.Linear(config.pred_hidden_size, config.hidden_size)
        init_vit_weights(self.layer, [self], std=config.initializer_range)
        if not config.pred_zero_init_mask_tokens:
            nn.init.trunc_normal_(self.embeddings.mask_tokens, std=config.initializer_range)

    def forward(self, context: torch.Tensor, context_ids: torch.Tensor, target_ids: torch.Tensor,
                mask_index: int = 0) -> torch.Tensor:
        """context [B, Nc, D] at context_ids [B, Nc]; target_ids [B, Nt] -> predictions [B, Nt, D]."""
        B, Nt = target_ids.shape
        x = self.embeddings.predictor_embeddings(context)
        mask_token = self.embeddings.mask_tokens[mask_index % self.config.pred_num_mask_tokens]  # [1, 1, Dp]
        x = torch.cat([x, mask_token.to(x.dtype).expand(B, Nt, -1)], dim=1)
        ids = torch.cat([context_ids, target_ids], dim=1)
        for layer in self.layer:
            x = layer(x, ids)[0]
        return self.proj(self.layernorm(x[:, context.shape[1]:]))
