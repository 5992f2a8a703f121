"""V-JEPA self-supervised pretraining: masked latent prediction against an EMA target encoder.

One step, per clip batch and per mask set (short-range, long-range):
  context encoder(visible tokens only) -> predictor(context + mask tokens at target positions)
  -> L1 against layer_norm(EMA target encoder(full clip)) at the target positions.
Then AdamW (scheduled LR and WD, gradient clipping) and the EMA update of the target encoder.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vjepa_ac.checkpoint import (
    load_state_into,
    load_train_state,
    load_weights,
    resolve_checkpoint,
    save_checkpoint,
    split_prefix,
)
from vjepa_ac.masks import MaskSet, MultiBlockMaskCollator
from vjepa_ac.models.encoder import VideoEncoder, gather_tokens, vjepa2_config
from vjepa_ac.models.predictor import MaskedPredictor
from vjepa_ac.training import (
    CollapseMonitor,
    DistInfo,
    ResumableSampler,
    TensorBoardLogger,
    adamw_param_groups,
    all_reduce_mean,
    check_finite,
    cleanup_distributed,
    ema_update,
    embedding_stats,
    linear,
    seed_everything,
    set_hparams,
    setup_distributed,
    warmup_cosine,
)

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


def schedules(cfg: DictConfig, step: int) -> dict[str, float]:
    o = cfg.optim
    return {
        "lr": warmup_cosine(step, o.total_steps, o.warmup_steps, o.lr, o.start_lr, o.final_lr),
        "weight_decay": linear(step, o.total_steps, o.weight_decay, o.final_weight_decay),
        "ema_momentum": linear(step, o.total_steps, o.ema_momentum, o.final_ema_momentum),
    }


def train_step(model: nn.Module, target_encoder: VideoEncoder, optimizer: torch.optim.Optimizer, video: torch.Tensor,
               masks: list[tuple[torch.Tensor, torch.Tensor]], hp: dict[str, float], grad_clip: float,
               autocast: torch.autocast, step: int, batch_info: str, last_checkpoint: Path | None) -> dict:
    """One optimisation step; returns the (all-reduced) loss, grad norm and the raw target features."""
    set_hparams(optimizer, hp["lr"], hp["weight_decay"])
    with autocast:
        feats = target_features(target_encoder, video)
        preds = model(video, masks)
    loss = jepa_loss(preds, F.layer_norm(feats, feats.shape[-1:]), masks)
    check_finite(all_reduce_mean(loss.detach()), step, batch_info, last_checkpoint)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    ema_update(target_encoder, getattr(model, "module", model).encoder, hp["ema_momentum"])
    return {"loss": all_reduce_mean(loss.detach()).item(), "grad_norm": grad_norm.item(), "features": feats}


# ----------------------------------------------------------------------------- config and cost


def mask_sets(cfg: DictConfig) -> list[MaskSet]:
    return [MaskSet(num_blocks=m.num_blocks, spatial_scale=m.spatial_scale, aspect_ratio=tuple(m.aspect_ratio),
                    temporal_scale=m.get("temporal_scale", 1.0)) for m in cfg.masks]


def validate_config(cfg: DictConfig, world_size: int = 1) -> None:
    """Fail before training, naming the offending keys."""
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
    if o.batch_size % world_size:
        raise ValueError(f"optim.batch_size={o.batch_size} (global) is not divisible by the {world_size} processes")
    if not 0.0 <= o.ema_momentum <= 1.0 or not 0.0 <= o.final_ema_momentum <= 1.0:
        raise ValueError("optim.ema_momentum and optim.final_ema_momentum must be in [0, 1]")
    if o.warmup_steps > o.total_steps:
        raise ValueError(f"optim.warmup_steps={o.warmup_steps} exceeds optim.total_steps={o.total_steps}")


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


# ----------------------------------------------------------------------------- the loop


def build_dataset(cfg: DictConfig):
    from vjepa_ac.data import VideoClipDataset

    d = cfg.data
    return VideoClipDataset(d.root, frames_per_clip=d.frames_per_clip, frame_step=d.frame_step,
                            resolution=d.resolution, random_resized_crop=d.random_resized_crop,
                            crop_scale=tuple(d.crop_scale))


def pretrain(cfg: DictConfig, dataset=None) -> Path:
    """Run (or resume) pretraining as configured; returns the checkpoint directory.

    `dataset` (items float[T, C, H, W]) replaces the video folder of `cfg.data.root` (tests).
    """
    dist_info: DistInfo = setup_distributed(cfg.device)
    handler = None
    if dist_info.is_main:
        Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(cfg.run_dir) / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        return _pretrain(cfg, dist_info, dataset)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        cleanup_distributed()


def _pretrain(cfg: DictConfig, dist_info: DistInfo, dataset) -> Path:
    validate_config(cfg, dist_info.world_size)
    device, main = dist_info.device, dist_info.is_main
    run_dir = Path(cfg.run_dir)  # train.log, metrics.jsonl (one line per log step), tb/, checkpoint/
    ckpt_dir = run_dir / "checkpoint"
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)

    seed_everything(cfg.seed)  # same init on every rank
    config = vjepa2_config(cfg.model)
    model = JEPA(config).to(device)
    target_encoder = copy.deepcopy(model.encoder).requires_grad_(False)
    optimizer = torch.optim.AdamW(adamw_param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                  betas=tuple(cfg.optim.betas))
    step, monitor = 0, CollapseMonitor()
    last_ckpt = None
    if cfg.resume and (ckpt_dir.exists() or ckpt_dir.with_name("checkpoint.old").exists()):
        last_ckpt = resolve_checkpoint(ckpt_dir)
        tensors = load_weights(last_ckpt)
        load_state_into(model.encoder, split_prefix(tensors, "encoder"), source=f"{last_ckpt} [encoder]")
        load_state_into(model.predictor, split_prefix(tensors, "predictor"), source=f"{last_ckpt} [predictor]")
        load_state_into(target_encoder, split_prefix(tensors, "target_encoder"), source=f"{last_ckpt} [target_encoder]")
        state = load_train_state(last_ckpt, optimizer)
        step = state["step"]
        monitor.best_std, monitor.best_rank = state["extra"].get("best_std", 0.0), state["extra"].get("best_rank", 0.0)
        if main:
            log.info("resumed from %s at step %d", last_ckpt, step)
    elif cfg.resume and main:
        log.info("resume=true but no checkpoint at %s: starting from scratch", ckpt_dir)
    ddp_model = DistributedDataParallel(model) if dist_info.enabled else model

    dataset = build_dataset(cfg) if dataset is None else dataset
    per_rank = cfg.optim.batch_size // dist_info.world_size
    sampler = ResumableSampler(len(dataset), seed=cfg.seed, rank=dist_info.rank, world_size=dist_info.world_size)
    steps_per_epoch = sampler.per_rank // per_rank
    if steps_per_epoch == 0:
        raise ValueError(f"dataset has {len(dataset)} clips, fewer than optim.batch_size={cfg.optim.batch_size}")
    grid = (cfg.data.frames_per_clip // config.tubelet_size, config.crop_size // config.patch_size,
            config.crop_size // config.patch_size)
    collator = MultiBlockMaskCollator(grid, mask_sets(cfg), seed=cfg.seed, rank=dist_info.rank)
    use_bf16 = cfg.optim.bf16 and device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    logger = TensorBoardLogger(run_dir / "tb", enabled=main)
    if main:
        log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
        log.info("%d clips, %d steps per epoch, global batch %d over %d processes", len(dataset), steps_per_epoch,
                 cfg.optim.batch_size, dist_info.world_size)

    def checkpoint(at_step: int) -> Path:
        path = save_checkpoint(ckpt_dir, {"encoder": model.encoder, "predictor": model.predictor,
                                          "target_encoder": target_encoder}, cfg, optimizer=optimizer, step=at_step,
                               extra={"best_std": monitor.best_std, "best_rank": monitor.best_rank})
        log.info("step %d: checkpoint written to %s", at_step, path)
        return path

    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.get("max_minutes") else None
    bar = tqdm(total=cfg.optim.total_steps, initial=step, disable=not main, desc="pretrain", dynamic_ncols=True)
    window_t, window_steps, window_flops = time.perf_counter(), 0, 0.0
    model.train()
    while step < cfg.optim.total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, skip=offset * per_rank)
        collator.set_epoch(epoch, start_batch=offset)
        # workers' RNG (random crops) seeded from (seed, rank, epoch, offset): re-runs and resumed runs repeat
        # themselves; masks and clip order match an uninterrupted run exactly, random crops do not after a resume
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=per_rank, sampler=sampler, collate_fn=collator, num_workers=cfg.data.num_workers,
            drop_last=True, generator=torch.Generator().manual_seed(hash((cfg.seed, dist_info.rank, epoch, offset))))
        for batch in loader:
            video = batch["video"].to(device, non_blocking=True)
            masks = [(c.to(device), t.to(device)) for c, t in batch["masks"]]
            hp = schedules(cfg, step)
            out = train_step(ddp_model, target_encoder, optimizer, video, masks, hp, cfg.optim.grad_clip, autocast,
                             step, f"epoch {epoch}, batch {batch['batch_index']}", last_ckpt)
            step += 1
            window_steps += 1
            window_flops += step_flops(config, masks, per_rank) * dist_info.world_size
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.optim.total_steps:
                elapsed = time.perf_counter() - window_t
                clips_per_s = window_steps * cfg.optim.batch_size / elapsed
                gflops = window_flops / elapsed / 1e9
                std, rank = embedding_stats(out["features"])
                scalars = {"loss": out["loss"], "lr": hp["lr"], "weight_decay": hp["weight_decay"],
                           "ema_momentum": hp["ema_momentum"], "grad_norm": out["grad_norm"],
                           "throughput/clips_per_s": clips_per_s, "throughput/gflops_per_s": gflops,
                           "embedding/std": std, "embedding/effective_rank": rank}
                logger.scalars(scalars, step)
                if main:
                    with open(run_dir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps({"step": step, **scalars}) + "\n")
                    for message in monitor.update(std, rank, step):
                        log.warning(message)
                    bar.set_postfix(loss=f"{out['loss']:.4f}", clips_s=f"{clips_per_s:.1f}", gflops=f"{gflops:.0f}")
                    log.info("step %d loss %.4f lr %.2e ema %.5f clips/s %.2f GFLOP/s %.1f (ceiling %s) "
                             "emb std %.3f rank %.1f", step, out["loss"], hp["lr"], hp["ema_momentum"], clips_per_s,
                             gflops, cfg.get("flops_ceiling_gflops"), std, rank)
                window_t, window_steps, window_flops = time.perf_counter(), 0, 0.0
            out_of_time = deadline is not None and all_reduce_mean(
                torch.tensor(float(time.monotonic() > deadline))).item() > 0  # every rank stops together
            if step % cfg.checkpoint_every == 0 or step == cfg.optim.total_steps or out_of_time:
                if main:
                    last_ckpt = checkpoint(step)
                else:
                    last_ckpt = ckpt_dir
            if out_of_time:
                if main:
                    log.warning("max_minutes=%s reached at step %d: stopping", cfg.max_minutes, step)
                bar.close()
                logger.close()
                return ckpt_dir
            if step >= cfg.optim.total_steps:
                break
    bar.close()
    logger.close()
    return ckpt_dir
