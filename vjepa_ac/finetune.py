"""Fine-tuning the action-conditioned predictor on robot logs over a frozen encoder (V-JEPA 2-AC).

Loss per window of T frames (latents z_0..z_{T-1}, states s_t, actions a_t):
- teacher forcing: predict z_{t+1} from the ground-truth z_{<=t}, s_{<=t}, a_{<=t}, for every t at once;
- rollout: from z_0 alone, feed the predictor's own outputs back for k steps (default 2), with the
  state integrated as s + a exactly as planning does, and compare each step with z_{t+1}.
Both are L1 against the frozen encoder's layer-normed latents; `train.tf_weight` and
`train.rollout_weight` weigh them.

The run writes `<out_dir>/checkpoint` (`vjepa_ac.checkpoint` layout: encoder + predictor weights,
resolved config with a `world_model` section, resume state), which `WorldModel.from_checkpoint` reads.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vjepa_ac import embedding_cache
from vjepa_ac.checkpoint import load_config, load_state_into, load_train_state, load_weights, save_checkpoint, split_prefix
from vjepa_ac.models.ac_predictor import ACPredictor, ACPredictorConfig
from vjepa_ac.training import (ResumableSampler, TensorBoardLogger, adamw_param_groups, all_reduce_mean,
                               check_finite, cleanup_distributed, seed_everything, set_hparams,
                               setup_distributed, warmup_cosine)
from vjepa_ac.world_model import FrameLatents, encoder_fields

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- model pieces


def load_encoder(cfg: DictConfig) -> nn.Module:
    """The frozen encoder named by the `encoder` config section.

    source: `pretrain` (our pretraining checkpoint directory), `hf` (a transformers `VJEPA2Model`
    folder or hub name, e.g. official weights), or `random` (fields in `encoder.config`; tests, timing).
    """
    from vjepa_ac.models.encoder import VideoEncoder, vjepa2_config

    if cfg.source == "hf":
        return VideoEncoder.from_pretrained(cfg.path)
    if cfg.source == "random":
        return VideoEncoder(vjepa2_config(cfg.config))
    if cfg.source == "pretrain":
        return VideoEncoder.from_checkpoint(cfg.path, cfg.get("weights", "target_encoder"))
    raise ValueError(f"encoder.source must be one of pretrain, hf, random; got {cfg.source!r}")


class FinetuneLoss(nn.Module):
    """Teacher-forcing and k-step rollout L1 losses of an `ACPredictor` (one module, for DDP)."""

    def __init__(self, predictor: ACPredictor, rollout_steps: int):
        super().__init__()
        self.predictor, self.rollout_steps = predictor, rollout_steps

    def forward(self, z: torch.Tensor, states: torch.Tensor, actions: torch.Tensor):
        """z `[B, T, N, D]`, states `[B, T, S]`, actions `[B, T-1, A]` -> (teacher-forcing L1, rollout L1)."""
        pred = self.predictor(z[:, :-1], states[:, :-1], actions)
        tf = (pred - z[:, 1:]).abs().mean()
        cache = self.predictor.new_cache()
        z_t, s_t, rollout = z[:, 0], states[:, 0], 0.0
        for k in range(self.rollout_steps):
            z_t = self.predictor.step(z_t, s_t, actions[:, k], cache)
            s_t = s_t + actions[:, k]
            rollout = rollout + (z_t - z[:, k + 1]).abs().mean()
        return tf, rollout / max(1, self.rollout_steps)


def world_model_spec(cfg: DictConfig, encoder: nn.Module) -> DictConfig:
    """The `world_model` section saved with the checkpoint: encoder fields, pool, predictor sizes."""
    return OmegaConf.create({"encoder": encoder_fields(encoder.config), "pool": int(cfg.world_model.pool),
                             "predictor": OmegaConf.to_container(cfg.world_model.predictor, resolve=True)})


def check_dims(sample, predictor_cfg: ACPredictorConfig, data_cfg: DictConfig, rollout_steps: int) -> None:
    """Dataset dims and window length against the config, naming both numbers on a mismatch."""
    _, states, actions = sample
    for what, key, got, want in (("state", data_cfg.get("state_key"), states.shape[-1], predictor_cfg.state_dim),
                                 ("action", data_cfg.get("action_key"), actions.shape[-1], predictor_cfg.action_dim)):
        if got != want:
            raise ValueError(f"dataset {what} dimension ({key}) is {got}, but config "
                             f"world_model.predictor.{what}_dim is {want}")
    if actions.shape[0] < rollout_steps:
        raise ValueError(f"windows have {actions.shape[0]} actions, fewer than train.rollout_steps={rollout_steps}; "
                         f"raise data.num_steps to at least {rollout_steps + 1}")


# ----------------------------------------------------------------------------- data


def robot_log_dataset(data_cfg: DictConfig, split: str, predictor_cfg: ACPredictorConfig, resolution: int) -> Dataset:
    """`RobotLogDataset` windows of the configured LeRobot folder, frames resized to the encoder's crop."""
    from vjepa_ac.data.robot_logs import RobotLogDataset

    return RobotLogDataset(data_cfg.root, camera_key=data_cfg.camera_key, state_key=data_cfg.state_key,
                           action_key=data_cfg.action_key, num_steps=data_cfg.num_steps, split=split,
                           state_dim=predictor_cfg.state_dim, action_dim=predictor_cfg.action_dim,
                           resolution=resolution, **OmegaConf.to_container(data_cfg.reader, resolve=True))


def latent_dataset(cfg: DictConfig, raw: Dataset, latents: FrameLatents, split: str, rank_is_main: bool,
                   device: torch.device) -> Dataset:
    """Windows as latents: from the embedding cache (built on rank 0 if missing), else `raw` itself."""
    if not cfg.cache.enabled:
        return raw
    settings = {"pool": latents.pool, "crop_size": latents.crop_size, "split": split,
                "data": OmegaConf.to_container(cfg.data, resolve=True), "windows": len(raw)}
    key = embedding_cache.cache_key(latents.encoder, settings, cfg.data.get("root"))
    kwargs = dict(batch_size=cfg.cache.batch_size, num_workers=cfg.train.num_workers, device=device,
                  desc=f"encoding {split} windows")
    if rank_is_main:
        windows = embedding_cache.load_or_build(raw, latents, cfg.cache.dir, key, **kwargs)
    if dist.is_initialized():
        dist.barrier()
    if not rank_is_main:
        windows = embedding_cache.load_or_build(raw, latents, cfg.cache.dir, key, build=False)
    return windows


def state_action_sample(dataset: Dataset, max_items: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """States and actions of (a seeded subset of) the windows, for the predictor's input normalisation."""
    if isinstance(dataset, embedding_cache.LatentWindows):
        return dataset.states, dataset.actions
    picked = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:max_items].tolist()
    items = [dataset[i] for i in picked]
    return torch.stack([it[1] for it in items]), torch.stack([it[2] for it in items])


def batches(dataset: Dataset, sampler: ResumableSampler, batch_size: int, start_step: int, num_workers: int):
    """Endless `(step, batch)` from `start_step`, resuming mid-epoch exactly where a run stopped."""
    steps_per_epoch = sampler.per_rank // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{sampler.per_rank} windows per process is fewer than train.batch_size={batch_size}")
    step = start_step
    while True:
        epoch, within = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, skip=within * batch_size)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                            num_workers=num_workers, persistent_workers=False)
        for batch in loader:
            yield step, batch
            step += 1
            if step % steps_per_epoch == 0:
                break


def to_latents(batch, latents: FrameLatents, cached: bool, device: torch.device):
    """A batch of cached latents, or of raw frames encoded now by the frozen encoder."""
    x, states, actions = (t.to(device) for t in batch)
    if not cached:
        with torch.no_grad():
            x = latents(x)
    return x.float(), states.float(), actions.float()


# ----------------------------------------------------------------------------- training


def finetune(cfg: DictConfig, train_set: Dataset | None = None, val_set: Dataset | None = None) -> Path:
    """Train the predictor on `(frames [T,C,H,W], states [T,S], actions [T-1,A])` windows; returns the checkpoint dir.

    Without datasets, the train/val splits of the LeRobot folder `cfg.data.root` are read.
    """
    info = setup_distributed(cfg.device)
    seed_everything(cfg.seed)
    out_dir = Path(cfg.out_dir)
    ckpt_dir = out_dir / "checkpoint"
    tcfg = cfg.train

    encoder = load_encoder(cfg.encoder).to(info.device)
    latents = FrameLatents(encoder, encoder.config.crop_size, encoder.config.patch_size, int(cfg.world_model.pool))
    spec = world_model_spec(cfg, encoder)
    pcfg = ACPredictorConfig(embed_dim=encoder.config.hidden_size, grid=latents.grid, **spec.predictor)
    predictor = ACPredictor(pcfg).to(info.device)
    if train_set is None:
        train_set = robot_log_dataset(cfg.data, "train", pcfg, latents.crop_size)
        val_set = robot_log_dataset(cfg.data, "val", pcfg, latents.crop_size)
    check_dims(train_set[0], pcfg, cfg.data, tcfg.rollout_steps)

    cached = bool(cfg.cache.enabled)
    train_data = latent_dataset(cfg, train_set, latents, "train", info.is_main, info.device)
    val_data = latent_dataset(cfg, val_set, latents, "val", info.is_main, info.device) if val_set is not None else None

    predictor.set_input_stats(*state_action_sample(train_data))
    optimizer = torch.optim.AdamW(adamw_param_groups(predictor, tcfg.weight_decay), lr=tcfg.lr,
                                  betas=tuple(tcfg.betas))
    start_step = 0
    if cfg.resume and (ckpt_dir / "train_state.safetensors").is_file():
        start_step = resume(ckpt_dir, predictor, optimizer, encoder)
        log.info("resumed from %s at step %d", ckpt_dir, start_step)

    loss_fn = FinetuneLoss(predictor, tcfg.rollout_steps)
    model = DDP(loss_fn) if info.enabled else loss_fn
    sampler = ResumableSampler(len(train_data), seed=cfg.seed, rank=info.rank, world_size=info.world_size)
    per_rank_batch = tcfg.batch_size // info.world_size
    if per_rank_batch * info.world_size != tcfg.batch_size:
        raise ValueError(f"train.batch_size={tcfg.batch_size} is not divisible by the {info.world_size} processes")
    num_workers = 0 if cached else tcfg.num_workers
    full_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # plain (not struct) copy
    full_cfg.world_model = spec
    tb = TensorBoardLogger(out_dir / "tb", enabled=info.is_main)
    with log_to_file(out_dir / "finetune.log", enabled=info.is_main):
        log.info("%d train windows, %d val windows, global batch %d over %d processes, latents %s x %d",
                 len(train_data), len(val_data) if val_data is not None else 0, tcfg.batch_size,
                 info.world_size, latents.grid, pcfg.embed_dim)
        last_ckpt = ckpt_dir if start_step > 0 else None  # a checkpoint of an earlier, unrelated run is not "good"
        bar = tqdm(total=tcfg.steps, initial=start_step, desc="finetune", disable=not info.is_main)
        t0, seen = time.time(), 0
        for step, batch in batches(train_data, sampler, per_rank_batch, start_step, num_workers):
            if step >= tcfg.steps:
                break
            lr = warmup_cosine(step, tcfg.steps, tcfg.warmup_steps, tcfg.lr, start=tcfg.lr * tcfg.warmup_start,
                               final=tcfg.lr * tcfg.final_lr_ratio)
            set_hparams(optimizer, lr, tcfg.weight_decay)
            z, states, actions = to_latents(batch, latents, cached, info.device)
            model.train()
            tf, rollout = model(z, states, actions)
            loss = tcfg.tf_weight * tf + tcfg.rollout_weight * rollout
            # the mean over processes is NaN if any process's is, so every process stops together
            check_finite(all_reduce_mean(loss.detach()), step, f"batch of {z.shape[0]} windows on rank "
                         f"{info.rank}, epoch {sampler.epoch}", last_ckpt)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(predictor.parameters(), tcfg.grad_clip)
            optimizer.step()
            seen += z.shape[0] * info.world_size
            bar.update(1)
            if (step + 1) % tcfg.log_every == 0:
                tf_m, ro_m = all_reduce_mean(tf.detach()).item(), all_reduce_mean(rollout.detach()).item()
                rate = seen / (time.time() - t0)
                bar.set_postfix(tf=f"{tf_m:.4f}", rollout=f"{ro_m:.4f}", lr=f"{lr:.2e}")
                tb.scalars({"loss/teacher_forcing": tf_m, "loss/rollout": ro_m, "lr": lr,
                            "grad_norm": grad_norm.item(), "throughput/windows_per_s": rate}, step + 1)
                log.info("step %d tf %.4f rollout %.4f lr %.2e %.1f windows/s", step + 1, tf_m, ro_m, lr, rate)
            if val_data is not None and (step + 1) % tcfg.val_every == 0:
                val = evaluate_loss(loss_fn, val_data, latents, cached, info.device, per_rank_batch, tcfg.val_batches)
                tb.scalars({"val/teacher_forcing": val[0], "val/rollout": val[1]}, step + 1)
                log.info("step %d val tf %.4f rollout %.4f", step + 1, *val)
            if (step + 1) % tcfg.ckpt_every == 0 or step + 1 == tcfg.steps:
                if info.is_main:
                    save_checkpoint(ckpt_dir, {"encoder": encoder, "predictor": predictor}, full_cfg, optimizer,
                                    step + 1)
                last_ckpt = ckpt_dir
        bar.close()
        tb.close()
    del model  # the DDP wrapper, before the process group goes: see cleanup_distributed
    if dist.is_initialized():
        dist.barrier()
    cleanup_distributed()
    return ckpt_dir


@contextmanager
def log_to_file(path: Path, enabled: bool):
    """Copy the `vjepa_ac` loggers' records to `path` (main process only) while the block runs."""
    if not enabled:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("vjepa_ac")
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def resume(ckpt_dir: Path, predictor: ACPredictor, optimizer: torch.optim.Optimizer, encoder: nn.Module) -> int:
    """Load predictor + optimizer + RNG state; the checkpoint's encoder must be the one in use."""
    saved = load_config(ckpt_dir).world_model
    if int(saved.encoder.hidden_size) != encoder.config.hidden_size:
        raise ValueError(f"checkpoint {ckpt_dir} was trained on encoder features of size {saved.encoder.hidden_size}, "
                         f"but the configured encoder gives {encoder.config.hidden_size}")
    weights = load_weights(ckpt_dir)
    load_state_into(predictor, split_prefix(weights, "predictor"), source=f"{ckpt_dir} (predictor.*)")
    return load_train_state(ckpt_dir, optimizer)["step"]


@torch.no_grad()
def evaluate_loss(loss_fn: FinetuneLoss, data: Dataset, latents: FrameLatents, cached: bool, device: torch.device,
                  batch_size: int, max_batches: int) -> tuple[float, float]:
    """Mean (teacher-forcing, rollout) L1 over the first `max_batches` batches of `data`."""
    loss_fn.eval()
    totals, n = torch.zeros(2), 0
    for i, batch in enumerate(DataLoader(data, batch_size=batch_size, shuffle=False)):
        if i >= max_batches:
            break
        tf, rollout = loss_fn(*to_latents(batch, latents, cached, device))
        totals += torch.stack([tf, rollout]).cpu()
        n += 1
    totals = all_reduce_mean(totals / max(1, n))
    return totals[0].item(), totals[1].item()
