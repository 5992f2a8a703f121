"""V-JEPA self-supervised pretraining: masked latent prediction against an EMA target encoder.

One step, per clip batch and per mask set (short-range, long-range):
  context encoder(visible tokens only) -> predictor(context + mask tokens at target positions)
  -> L1 against layer_norm(EMA target encoder(full clip)) at the target positions.
Then AdamW (scheduled LR and WD, gradient clipping) and the EMA update of the target encoder.
The loop itself (resume, logging, checkpoints, DDP) is `vjepa_ac.train_loop`; this module supplies
the objective.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from vjepa_ac.data.video import VideoClipDataset
from vjepa_ac.masks import MaskSet, sample_masks
from vjepa_ac.models.encoder import VideoEncoder, gather_tokens, vjepa2_config
from vjepa_ac.models.predictor import MaskedPredictor
from vjepa_ac.train_loop import Objective, StepOutput, train
from vjepa_ac.training import (CollapseMonitor, DistInfo, adamw_param_groups, ema_update, embedding_stats, linear,
                               main_first)

log = logging.getLogger(__name__)


class JEPA(nn.Module):
    """The trained pair: context encoder + predictor (the EMA target encoder lives outside, no grad)."""

    def __init__(self, config):
        super().__init__()
        self.encoder = VideoEncoder(config)
        self.predictor = MaskedPredictor(config)

    def forward(self, video: torch.Tensor, masks: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Predicted target embeddings [B, Nt, D], one tensor per mask set."""
        preds = []
        for i, (context_ids, target_ids) in enumerate(masks):
            context = self.encoder(video, context_ids)
            preds.append(self.predictor(context, context_ids, target_ids, mask_index=i))
        return preds


def jepa_loss(preds: list[torch.Tensor], targets: torch.Tensor,
              masks: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean over mask sets of the L1 between predictions and layer-normed targets at target positions."""
    losses = [F.l1_loss(p.float(), gather_tokens(targets, tgt)) for p, (_, tgt) in zip(preds, masks)]
    return torch.stack(losses).mean()


@torch.no_grad()
def target_features(target_encoder: VideoEncoder, video: torch.Tensor) -> torch.Tensor:
    """EMA encoder on the full clip -> raw features [B, N, D] (layer-norm them for the loss)."""
    return target_encoder(video).float()


def forward_loss(model: nn.Module, target_encoder: VideoEncoder, video: torch.Tensor,
                 masks: list[tuple[torch.Tensor, torch.Tensor]],
                 autocast: torch.autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """The JEPA loss of one batch, and the target encoder's raw features (for the collapse monitor)."""
    with autocast:
        feats = target_features(target_encoder, video)
        preds = model(video, masks)
    return jepa_loss(preds, F.layer_norm(feats, feats.shape[-1:]), masks), feats


# ----------------------------------------------------------------------------- config and cost


def mask_sets(cfg: DictConfig) -> list[MaskSet]:
    return [MaskSet(num_blocks=m.num_blocks, spatial_scale=m.spatial_scale, aspect_ratio=tuple(m.aspect_ratio),
                    temporal_scale=m.get("temporal_scale", 1.0)) for m in cfg.masks]


def validate_config(cfg: DictConfig) -> None:
    """Fail before training, naming the offending keys (the loop's own keys: `check_loop_config`)."""
    model = vjepa2_config(cfg.model)
    d, o = cfg.data, cfg.optim
    if d.frames_per_clip % model.tubelet_size:
        raise ValueError(f"data.frames_per_clip={d.frames_per_clip} is not divisible by "
                         f"model.tubelet_size={model.tubelet_size}")
    if d.resolution != model.crop_size:
        raise ValueError(f"data.resolution={d.resolution} must equal model.crop_size={model.crop_size}")
    if not cfg.masks:
        raise ValueError("masks: at least one mask set is needed")
    for i, s in enumerate(mask_sets(cfg)):
        s.validate(f"masks[{i}]")
    if len(cfg.masks) > model.pred_num_mask_tokens:
        raise ValueError(f"{len(cfg.masks)} mask sets but model.pred_num_mask_tokens={model.pred_num_mask_tokens}")
    if not 0.0 <= o.ema_momentum <= 1.0 or not 0.0 <= o.final_ema_momentum <= 1.0:
        raise ValueError("optim.ema_momentum and optim.final_ema_momentum must be in [0, 1]")


def vit_flops(tokens: float, width: int, depth: int, mlp_ratio: float) -> float:
    """Forward FLOPs of `depth` pre-norm blocks on `tokens` tokens (matmuls only)."""
    linear_flops = 2 * tokens * (4 * width * width + 2 * mlp_ratio * width * width)
    attention_flops = 4 * tokens * tokens * width
    return depth * (linear_flops + attention_flops)


def step_flops(config, masks: list[tuple[torch.Tensor, torch.Tensor]], batch_size: int) -> float:
    """Approximate FLOPs of one training step: target forward + 3x (context encoder + predictor)."""
    c = config
    n_all = (c.frames_per_clip // c.tubelet_size) * (c.crop_size // c.patch_size) ** 2
    patch_dim = c.in_chans * c.tubelet_size * c.patch_size ** 2
    total = vit_flops(n_all, c.hidden_size, c.num_hidden_layers, c.mlp_ratio) + 2 * n_all * patch_dim * c.hidden_size
    for ctx, tgt in masks:
        nc, nt = ctx.shape[1], tgt.shape[1]
        enc = vit_flops(nc, c.hidden_size, c.num_hidden_layers, c.mlp_ratio) + 2 * nc * patch_dim * c.hidden_size
        pred = vit_flops(nc + nt, c.pred_hidden_size, c.pred_num_hidden_layers, c.pred_mlp_ratio)
        total += 3 * (enc + pred)
    return total * batch_size


# ----------------------------------------------------------------------------- the objective


def build_dataset(cfg: DictConfig, is_main: bool = True) -> VideoClipDataset:
    """The clips of `data.root`, decoded once into the frame cache when `data.frame_cache` names a folder."""
    d = cfg.data
    dataset = VideoClipDataset(d.root, frames_per_clip=d.frames_per_clip, frame_step=d.frame_step,
                               resolution=d.resolution, random_resized_crop=d.random_resized_crop,
                               crop_scale=tuple(d.crop_scale))
    if d.get("frame_cache"):
        main_first(lambda build: dataset.use_frame_cache(d.frame_cache, build=build, num_workers=d.num_workers),
                   is_main)
    return dataset


class Pretraining(Objective):
    """Context encoder + predictor against the EMA target encoder, on multi-block masked clips."""

    name, unit = "pretrain", "clips"

    def __init__(self, cfg: DictConfig, dist_info: DistInfo, dataset: Dataset | None = None):
        validate_config(cfg)
        self.cfg, self.dist_info = cfg, dist_info
        device = dist_info.device
        self.config = vjepa2_config(cfg.model)
        self.model = JEPA(self.config).to(device)
        self.target_encoder = copy.deepcopy(self.model.encoder).requires_grad_(False)
        self.modules = {"encoder": self.model.encoder, "predictor": self.model.predictor,
                        "target_encoder": self.target_encoder}
        self.optimizer = torch.optim.AdamW(adamw_param_groups(self.model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                           betas=tuple(cfg.optim.betas))
        self.dataset = build_dataset(cfg, dist_info.is_main) if dataset is None else dataset
        self.num_workers = cfg.data.num_workers
        self.saved_config = cfg
        side = self.config.crop_size // self.config.patch_size
        self.grid = (cfg.data.frames_per_clip // self.config.tubelet_size, side, side)
        self.mask_sets = mask_sets(cfg)
        self.bf16 = cfg.optim.bf16 and device.type == "cuda"
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)
        self.monitor = CollapseMonitor()
        self.ema_momentum = cfg.optim.ema_momentum

    def loss(self, model: nn.Module, batch: torch.Tensor, epoch: int, index: int) -> StepOutput:
        device = self.dist_info.device
        video = batch.to(device, non_blocking=True)
        # sampled here, not in the loader's workers: batch `index` of `epoch` gets the same masks
        # whatever the number of workers and wherever the run was resumed
        rng = np.random.default_rng([self.cfg.seed, self.dist_info.rank, epoch, index])
        masks = [(c.to(device), t.to(device)) for c, t in sample_masks(len(video), self.grid, self.mask_sets, rng)]
        loss, features = forward_loss(model, self.target_encoder, video, masks, self.autocast)
        return StepOutput(loss, step_flops(self.config, masks, len(video)), {"features": features})

    def after_step(self, step: int) -> None:
        o = self.cfg.optim
        self.ema_momentum = linear(step, self.cfg.train.steps, o.ema_momentum, o.final_ema_momentum)
        ema_update(self.target_encoder, self.model.encoder, self.ema_momentum)

    def metrics(self, out: StepOutput, step: int) -> dict[str, float]:
        std, rank = embedding_stats(out.aux["features"])
        if self.dist_info.is_main:
            for message in self.monitor.update(std, rank, step):
                log.warning(message)
        return {"ema_momentum": self.ema_momentum, "embedding/std": std, "embedding/effective_rank": rank}

    def run_state(self) -> dict[str, float]:
        return {"best_std": self.monitor.best_std, "best_rank": self.monitor.best_rank}

    def load_run_state(self, state: dict[str, float]) -> None:
        self.monitor.best_std, self.monitor.best_rank = state.get("best_std", 0.0), state.get("best_rank", 0.0)


def pretrain(cfg: DictConfig, dataset: Dataset | None = None) -> Path:
    """Run (or resume) pretraining as configured; returns the checkpoint directory.

    `dataset` (items float[T, C, H, W]) replaces the video folder of `cfg.data.root` (tests).
    """
    return train(cfg, lambda dist_info: Pretraining(cfg, dist_info, dataset))
