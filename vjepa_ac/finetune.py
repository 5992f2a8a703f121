"""Fine-tuning the action-conditioned predictor on robot logs over a frozen encoder (V-JEPA 2-AC).

Loss per window of T frames (latents z_0..z_{T-1}, states s_t, actions a_t):
- teacher forcing: predict z_{t+1} from the ground-truth z_{<=t}, s_{<=t}, a_{<=t}, for every t at once;
- rollout: from z_0 alone, feed the predictor's own outputs back for k steps (default 2), with the
  state integrated as s + a exactly as planning does (or, with `predicts_state`, the predicted
  state), and compare each step with z_{t+1}.
Both are L1 against the frozen encoder's layer-normed latents; `train.tf_weight` and
`train.rollout_weight` weigh them. With `world_model.predictor.predicts_state`, the predicted next
states of both are compared with the logged ones (squared error in state-std units, `train.state_weight`).

The run writes `<output_dir>/checkpoint` (`vjepa_ac.checkpoint` layout: encoder + predictor weights,
resolved config with a `world_model` section, resume state), which `WorldModel.from_checkpoint` reads.
The loop itself (resume, logging, checkpoints, DDP) is `vjepa_ac.train_loop`; this module supplies
the objective.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vjepa_ac import embedding_cache
from vjepa_ac.checkpoint import load_config, load_state_into, load_weights, split_prefix
from vjepa_ac.models.ac_predictor import ACPredictor, ACPredictorConfig
from vjepa_ac.train_loop import Objective, StepOutput, train
from vjepa_ac.training import DistInfo, adamw_param_groups, all_reduce_mean, main_first
from vjepa_ac.world_model import FrameLatents, encoder_fields

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- model pieces


def load_encoder(cfg: DictConfig) -> nn.Module:
    """The frozen encoder named by the `encoder` config section.

    source: `pretrain` (one of our checkpoint directories: a pretraining run's, whose EMA target
    encoder is taken, or a fine-tuned world model's, e.g. the shipped `checkpoints/vjepa_ac_tiny`,
    whose encoder is taken; `encoder.weights` overrides the choice), `hf` (a transformers
    `VJEPA2Model` folder or hub name, e.g. official weights), or `random` (fields in
    `encoder.config`; tests, timing).
    """
    from vjepa_ac.models.encoder import VideoEncoder, vjepa2_config

    if cfg.source == "hf":
        return VideoEncoder.from_pretrained(cfg.path)
    if cfg.source == "random":
        return VideoEncoder(vjepa2_config(cfg.config))
    if cfg.source == "pretrain":
        if not Path(cfg.path).exists():
            raise FileNotFoundError(f"encoder.path={cfg.path} does not exist: name a checkpoint directory, e.g. "
                                    f"runs/pretrain/checkpoint or checkpoints/vjepa_ac_tiny")
        return VideoEncoder.from_checkpoint(cfg.path, cfg.get("weights"))
    raise ValueError(f"encoder.source must be one of pretrain, hf, random; got {cfg.source!r}")


class FinetuneLoss(nn.Module):
    """Teacher-forcing and k-step rollout L1 losses of an `ACPredictor` (one module, for DDP)."""

    def __init__(self, predictor: ACPredictor, rollout_steps: int):
        super().__init__()
        self.predictor, self.rollout_steps = predictor, rollout_steps

    def forward(self, z: torch.Tensor, states: torch.Tensor, actions: torch.Tensor):
        """z `[B, T, N, D]`, states `[B, T, S]`, actions `[B, T-1, A]` -> (teacher-forcing L1, rollout L1,
        state error: the predicted next states' over both, zero without `predicts_state`)."""
        pred, pred_states = self.predictor(z[:, :-1], states[:, :-1], actions)
        tf = (pred - z[:, 1:]).abs().mean()
        state = self._state_error(pred_states, states[:, 1:])
        cache = self.predictor.new_cache()
        z_t, s_t, rollout = z[:, 0], states[:, 0], 0.0
        for k in range(self.rollout_steps):
            z_t, predicted = self.predictor.step(z_t, s_t, actions[:, k], cache)
            s_t = s_t + actions[:, k] if predicted is None else predicted
            rollout = rollout + (z_t - z[:, k + 1]).abs().mean()
            state = state + self._state_error(predicted, states[:, k + 1])
        return tf, rollout / max(1, self.rollout_steps), state / (1 + self.rollout_steps)

    def _state_error(self, predicted: torch.Tensor | None, true: torch.Tensor) -> torch.Tensor:
        """Squared error of predicted next states in state-std units (a zero tensor when the predictor
        predicts none). Squared, not L1: the gripper's jumps (one step per close or open command, a
        jump to 0.4 on an object or 1.0 empty) are rare, and an L1 fit predicted "no change" there."""
        if predicted is None:
            return torch.zeros((), device=true.device)
        return ((predicted - true) / self.predictor.state_std).pow(2).mean()


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
    data = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "num_workers"}
    settings = {"pool": latents.pool, "crop_size": latents.crop_size, "split": split, "data": data,
                "windows": len(raw)}
    key = embedding_cache.cache_key(latents.encoder, settings, cfg.data.get("root"))
    return main_first(lambda build: embedding_cache.load_or_build(
        raw, latents, cfg.cache.dir, key, build=build, batch_size=cfg.cache.batch_size,
        num_workers=cfg.data.num_workers, device=device, desc=f"encoding {split} windows"), rank_is_main)


def state_action_sample(dataset: Dataset, max_items: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """States and actions of (a seeded subset of) the windows, for the predictor's input normalisation."""
    if isinstance(dataset, embedding_cache.LatentWindows):
        return dataset.states, dataset.actions
    picked = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:max_items].tolist()
    items = [dataset[i] for i in picked]
    return torch.stack([it[1] for it in items]), torch.stack([it[2] for it in items])


def to_latents(batch, latents: FrameLatents, cached: bool, device: torch.device):
    """A batch of cached latents, or of raw frames encoded now by the frozen encoder."""
    x, states, actions = (t.to(device) for t in batch)
    if not cached:
        with torch.no_grad():
            x = latents(x)
    return x.float(), states.float(), actions.float()


# ----------------------------------------------------------------------------- training


def check_data_root(cfg: DictConfig) -> None:
    """The robot-log folder first: it is the first thing a user names, and missing data is the likelier slip."""
    root = cfg.data.get("root")
    if root is None or not Path(root).exists():
        raise FileNotFoundError(f"data.root={root} does not exist: name a LeRobot v3.0 dataset folder, e.g. "
                                f"one written by scripts/collect_robot_logs.py")


class Finetuning(Objective):
    """The action-conditioned predictor on frozen-encoder latents: teacher-forcing + rollout L1."""

    name, unit = "finetune", "windows"

    def __init__(self, cfg: DictConfig, dist_info: DistInfo, train_set: Dataset | None, val_set: Dataset | None):
        if train_set is None:
            check_data_root(cfg)
        self.cfg, self.dist_info = cfg, dist_info
        device, t = dist_info.device, cfg.train
        self.encoder = load_encoder(cfg.encoder).to(device)
        self.latents = FrameLatents(self.encoder, self.encoder.config.crop_size, self.encoder.config.patch_size,
                                    int(cfg.world_model.pool))
        spec = world_model_spec(cfg, self.encoder)
        pcfg = ACPredictorConfig(embed_dim=self.encoder.config.hidden_size, grid=self.latents.grid, **spec.predictor)
        self.predictor = ACPredictor(pcfg).to(device)
        if train_set is None:
            train_set = robot_log_dataset(cfg.data, "train", pcfg, self.latents.crop_size)
            val_set = robot_log_dataset(cfg.data, "val", pcfg, self.latents.crop_size)
        check_dims(train_set[0], pcfg, cfg.data, t.rollout_steps)

        self.cached = bool(cfg.cache.enabled)
        self.dataset = latent_dataset(cfg, train_set, self.latents, "train", dist_info.is_main, device)
        self.val_data = (latent_dataset(cfg, val_set, self.latents, "val", dist_info.is_main, device)
                         if val_set is not None else None)
        self.num_workers = 0 if self.cached else cfg.data.num_workers
        log.info("%d train windows, %d val windows, latents %s x %d", len(self.dataset),
                 len(self.val_data) if self.val_data is not None else 0, self.latents.grid, pcfg.embed_dim)

        self.predictor.set_input_stats(*state_action_sample(self.dataset))
        self.optimizer = torch.optim.AdamW(adamw_param_groups(self.predictor, cfg.optim.weight_decay),
                                           lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
        self.model = FinetuneLoss(self.predictor, t.rollout_steps)
        self.modules = {"encoder": self.encoder, "predictor": self.predictor}
        self.saved_config = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # plain (not struct) copy
        self.saved_config.world_model = spec

    def loss(self, model: nn.Module, batch, epoch: int, index: int) -> StepOutput:
        z, states, actions = to_latents(batch, self.latents, self.cached, self.dist_info.device)
        tf, rollout, state = model(z, states, actions)
        t = self.cfg.train
        loss = t.tf_weight * tf + t.rollout_weight * rollout + t.state_weight * state
        return StepOutput(loss, aux={"tf": tf.detach(), "rollout": rollout.detach(), "state": state.detach()})

    def metrics(self, out: StepOutput, step: int) -> dict[str, float]:
        return {"loss/teacher_forcing": all_reduce_mean(out.aux["tf"]).item(),
                "loss/rollout": all_reduce_mean(out.aux["rollout"]).item(),
                "loss/state": all_reduce_mean(out.aux["state"]).item()}

    def evaluate(self) -> dict[str, float]:
        if self.val_data is None:
            return {}
        per_rank = self.cfg.train.batch_size // self.dist_info.world_size
        tf, rollout, state = evaluate_loss(self.model, self.val_data, self.latents, self.cached,
                                           self.dist_info.device, per_rank, self.cfg.train.val_batches)
        return {"val/teacher_forcing": tf, "val/rollout": rollout, "val/state": state}

    def load(self, checkpoint: Path) -> None:
        """The predictor only: the encoder stays the configured one, which must match the checkpoint's."""
        saved = load_config(checkpoint).world_model
        if int(saved.encoder.hidden_size) != self.encoder.config.hidden_size:
            raise ValueError(f"checkpoint {checkpoint} was trained on encoder features of size "
                             f"{saved.encoder.hidden_size}, but the configured encoder gives "
                             f"{self.encoder.config.hidden_size}")
        load_state_into(self.predictor, split_prefix(load_weights(checkpoint), "predictor"),
                        source=f"{checkpoint} (predictor.*)")


def finetune(cfg: DictConfig, train_set: Dataset | None = None, val_set: Dataset | None = None) -> Path:
    """Train the predictor on `(frames [T,C,H,W], states [T,S], actions [T-1,A])` windows; returns the checkpoint dir.

    Without datasets, the train/val splits of the LeRobot folder `cfg.data.root` are read.
    """
    return train(cfg, lambda dist_info: Finetuning(cfg, dist_info, train_set, val_set))


@torch.no_grad()
def evaluate_loss(loss_fn: FinetuneLoss, data: Dataset, latents: FrameLatents, cached: bool, device: torch.device,
                  batch_size: int, max_batches: int) -> tuple[float, float, float]:
    """Mean (teacher-forcing L1, rollout L1, state error) over the first `max_batches` batches of `data`."""
    loss_fn.eval()
    totals, n = torch.zeros(3), 0
    for i, batch in enumerate(DataLoader(data, batch_size=batch_size, shuffle=False)):
        if i >= max_batches:
            break
        totals += torch.stack(loss_fn(*to_latents(batch, latents, cached, device))).cpu()
        n += 1
    totals = all_reduce_mean(totals / max(1, n))
    return totals[0].item(), totals[1].item(), totals[2].item()
