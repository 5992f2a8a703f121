"""The V-JEPA 2 video encoder, in `transformers`' `VJEPA2Model.encoder` parameter layout.

`VideoEncoder` subclasses `transformers`' `VJEPA2Encoder`, so its parameters have exactly the names
and shapes of the official checkpoints, and its blocks are `transformers`' own (`VJEPA2Layer`: pre-norm,
3D RoPE attention that tiles sin/cos with `repeat`, as the official weights need). What it adds is
**masked context encoding**: `forward(video, token_ids)` cuts the clip into tubelet patches, keeps
only the patches listed in `token_ids` and runs the transformer on those tokens alone, each rotated
by its own 3D position. Pixels of the other patches never enter the network, unlike
`VJEPA2Model.forward`, which encodes every token and masks afterwards.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import VJEPA2Config, VJEPA2Model
from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Encoder

from vjepa_ac.checkpoint import load_state_into


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x [B, N, F], ids [B, K] (token indices) -> [B, K, F]."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def init_vit_weights(layers: nn.ModuleList, modules: list[nn.Module], std: float = 0.02) -> None:
    """Truncated-normal init of linear/conv weights (as `VJEPA2PreTrainedModel`), zero biases, and the
    official V-JEPA rescaling of each block's output projections by 1/sqrt(2 * depth)."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    with torch.no_grad():
        for depth, layer in enumerate(layers, start=1):
            layer.attention.proj.weight.div_(math.sqrt(2.0 * depth))
            layer.mlp.fc2.weight.div_(math.sqrt(2.0 * depth))


class VideoEncoder(VJEPA2Encoder):
    """V-JEPA 2 ViT over `video [B, T, C, H, W]` (ImageNet-normalised) -> tokens `[B, N, D]`.

    N = (T / tubelet) * (H / patch) * (W / patch), tokens ordered (time, row, column). A single
    frame (T = 1) is encoded as a 2-frame tubelet of itself. `token_ids [B, K]` restricts the
    encoder to those tokens (the rest are never computed), returning `[B, K, D]`.
    """

    def __init__(self, config: VJEPA2Config):
        config = copy.deepcopy(config)
        config._attn_implementation = "sdpa"  # fused attention; same maths as the eager path
        super().__init__(config)
        init_vit_weights(self.layer, [self], std=config.initializer_range)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """video [B, T, C, H, W] -> patches [B, N, C * tubelet * patch * patch], in Conv3d weight order."""
        cfg = self.config
        if video.ndim != 5:
            raise ValueError(f"expected video [B, T, C, H, W], got shape {tuple(video.shape)}")
        B, T, C, H, W = video.shape
        t, p = cfg.tubelet_size, cfg.patch_size
        if T < t:
            video = video.repeat(1, math.ceil(t / T), 1, 1, 1)[:, :t]
            T = t
        if T % t or H != cfg.crop_size or W != cfg.crop_size or C != cfg.in_chans:
            raise ValueError(
                f"video {tuple(video.shape)} does not fit the encoder: frames must be a multiple of "
                f"tubelet_size={t} (or 1), height and width must equal crop_size={cfg.crop_size} "
                f"(3D RoPE positions are laid out on that grid), channels must be in_chans={cfg.in_chans}")
        x = video.reshape(B, T // t, t, C, H // p, p, W // p, p)
        x = x.permute(0, 1, 4, 6, 3, 2, 5, 7)  # B, T', H', W', C, t, p, p
        return x.reshape(B, (T // t) * (H // p) * (W // p), C * t * p * p)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """The tubelet Conv3d applied as a matrix product to already-cut patches."""
        proj = self.embeddings.patch_embeddings.proj
        return F.linear(patches.to(proj.weight.dtype), proj.weight.flatten(1), proj.bias)

    def forward(self, video: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        patches = self.patchify(video)
        if token_ids is not None:
            patches = gather_tokens(patches, token_ids)  # masked-out pixels are dropped here
        x = self.embed_patches(patches)
        for layer in self.layer:
            x = layer(x, token_ids)[0]  # RoPE at each kept token's own (frame, row, column)
        return self.layernorm(x)

    # ------------------------------------------------------------------ transformers interop

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> "VideoEncoder":
        """Load the encoder of a `transformers` `VJEPA2Model` checkpoint (hub name or local folder),
        e.g. `VideoEncoder.from_pretrained("facebook/vjepa2-vitl-fpc64-256")`. kwargs go to
        `VJEPA2Model.from_pretrained` (revision, cache_dir, torch_dtype, ...)."""
        hf = VJEPA2Model.from_pretrained(str(name_or_path), **kwargs)
        encoder = cls(hf.config).to(hf.dtype)
        load_state_into(encoder, hf.encoder.state_dict(), source=f"VJEPA2Model encoder of {name_or_path}")
        return encoder

    @classmethod
    def from_checkpoint(cls, path: str | Path, prefix: str | None = None) -> "VideoEncoder":
        """Load from one of our checkpoint directories (config.yaml + model.safetensors).

        `prefix` picks the module; by default "target_encoder" (the EMA encoder, used downstream) of
        a pretraining checkpoint, "encoder" of a fine-tuned world model (e.g. checkpoints/vjepa_ac_tiny).
        """
        from vjepa_ac.checkpoint import load_config, load_weights, split_prefix

        cfg = load_config(path)
        if "world_model" in cfg:  # fine-tuned: the encoder's fields are recorded with the world model
            model_cfg, default, kind = cfg.world_model.encoder, "encoder", "a fine-tuned world-model checkpoint"
        elif "model" in cfg:
            model_cfg, default, kind = cfg.model, "target_encoder", "a pretraining checkpoint"
        else:
            raise ValueError(f"{Path(path) / 'config.yaml'} has neither a 'model' nor a 'world_model' section: "
                             f"not a pretraining or fine-tuning checkpoint")
        prefix = prefix or default
        encoder = cls(vjepa2_config(model_cfg))
        tensors = split_prefix(load_weights(path), prefix)
        if not tensors:
            raise KeyError(f"checkpoint {path} ({kind}) holds no weights under '{prefix}.'; "
                           f"its encoder is '{default}.'")
        load_state_into(encoder, tensors, source=f"{path} [{prefix}]")
        return encoder

    def to_transformers(self, predictor: nn.Module | None = None) -> VJEPA2Model:
        """A `VJEPA2Model` holding these encoder weights (and `predictor`'s, when given, e.g. the
        pretraining `MaskedPredictor`, which shares `VJEPA2Predictor`'s layout)."""
        hf = VJEPA2Model(self.config)
        load_state_into(hf.encoder, self.state_dict(), source="VideoEncoder")
        if predictor is not None:
            load_state_into(hf.predictor, predictor.state_dict(), source=type(predictor).__name__)
        return hf

    def save_pretrained(self, path: str | Path, predictor: nn.Module | None = None) -> None:
        """Write a `transformers` checkpoint folder (config.json + model.safetensors) that
        `VJEPA2Model.from_pretrained` and `VideoEncoder.from_pretrained` read."""
        self.to_transformers(predictor).save_pretrained(str(path))


def vjepa2_config(model_cfg) -> VJEPA2Config:
    """`VJEPA2Config` from a `configs/model/*.yaml` mapping, checked (errors name the keys)."""
    from omegaconf import DictConfig, OmegaConf

    kwargs = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    config = VJEPA2Config(**kwargs)
    if config.crop_size % config.patch_size:
        raise ValueError(f"model.patch_size={config.patch_size} does not divide model.crop_size={config.crop_size}")
    for width, heads in (("hidden_size", "num_attention_heads"), ("pred_hidden_size", "pred_num_attention_heads")):
        if getattr(config, width) % getattr(config, heads):
            raise ValueError(f"model.{width}={getattr(config, width)} is not a multiple of "
                             f"model.{heads}={getattr(config, heads)}")
    return config
