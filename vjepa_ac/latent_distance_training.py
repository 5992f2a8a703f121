"""Training the learned latent distance (`vjepa_ac.models.latent_distance`) on robot logs, over a fine-tuned world model.

Like the goal-state head and the subgoal prior, the distance reads the frozen encoder's latents, so it
trains after fine-tuning and leaves the encoder and predictor untouched: the run loads a world-model
checkpoint, encodes every frame of the logs once (the subgoal prior's episode cache), and fits the
distance to hindsight samples: for every frame `t` of an episode, the goal is the episode's last
frame (what a user's goal image shows) and, `future_goals` times, a frame drawn from `t` to the last
(subgoal images, and zero at the goal itself); the target is the number of control steps between
them. It writes `<output_dir>/checkpoint`: the same world model (its heads included) plus
`latent_distance.*` and a `world_model.latent_distance` config section. Validation prints the
held-out error in steps and the within-episode rank correlation of the distance to the last frame
with the steps still to go.
"""
from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from vjepa_ac import embedding_cache
from vjepa_ac.checkpoint import load_config
from vjepa_ac.finetune import check_data_root
from vjepa_ac.models.latent_distance import LatentDistance
from vjepa_ac.subgoal_prior_training import demonstrations
from vjepa_ac.train_loop import Objective, StepOutput, train
from vjepa_ac.training import DistInfo, adamw_param_groups, all_reduce_mean
from vjepa_ac.world_model import HEADS, WorldModel, build_head

log = logging.getLogger(__name__)


class StepSamples(Dataset):
    """Hindsight samples over encoded episodes: item i is `(z_now [N, D], z_goal [N, D], steps [])`."""

    def __init__(self, episodes: list[embedding_cache.EpisodeLatents], future_goals: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.episodes = episodes
        samples = []  # (episode, frame, goal frame)
        for e, episode in enumerate(episodes):
            last = len(episode.z) - 1
            for t in range(last + 1):
                goals = [last] + torch.randint(t, last + 1, (future_goals,), generator=generator).tolist()
                samples += [(e, t, g) for g in goals]
        if not samples:
            raise ValueError("no episode has a frame: nothing to train the latent distance on")
        self.samples = torch.tensor(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        e, t, goal = self.samples[i].tolist()
        z = self.episodes[e].z
        return z[t].float(), z[goal].float(), torch.tensor(goal - t)


class DistanceLoss(torch.nn.Module):
    """The distance's loss on a batch (one module, for DDP)."""

    def __init__(self, distance: LatentDistance):
        super().__init__()
        self.distance = distance

    def forward(self, z_now: torch.Tensor, z_goal: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        return self.distance.loss(z_now, z_goal, steps)


class LatentDistanceTraining(Objective):
    """The latent distance on the frozen latents of the world model at `cfg.world_model`."""

    name, unit = "latent_distance", "samples"

    def __init__(self, cfg: DictConfig, dist_info: DistInfo):
        check_data_root(cfg)
        self.cfg, self.dist_info = cfg, dist_info
        others = tuple(name for name in HEADS if name != "latent_distance")  # a distance trained anew replaces the old
        wm = WorldModel.from_checkpoint(cfg.world_model, dist_info.device, heads=others)
        self.saved_config = load_config(cfg.world_model).copy()
        self.saved_config.world_model.latent_distance = OmegaConf.to_container(cfg.latent_distance, resolve=True)
        self.saved_config.latent_distance_run = OmegaConf.to_container(cfg, resolve=True)
        self.distance = build_head(self.saved_config.world_model, "latent_distance", wm.latents, wm.predictor).to(
            dist_info.device)

        def samples(split: str) -> StepSamples:
            dataset, episodes = demonstrations(cfg, split, wm.resolution)
            latents = embedding_cache.episode_latents(dataset, episodes, wm.latents, cfg.cache.dir,
                                                      cfg.cache.batch_size * 4, dist_info.is_main, dist_info.device)
            return StepSamples(latents, cfg.hindsight.future_goals, cfg.seed)

        self.dataset, self.val_data = samples("train"), samples("val")
        self.optimizer = torch.optim.AdamW(adamw_param_groups(self.distance, cfg.optim.weight_decay),
                                           lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
        self.model = DistanceLoss(self.distance)
        self.modules = {"encoder": wm.latents.encoder, "predictor": wm.predictor, "latent_distance": self.distance}
        self.modules |= {name: getattr(wm, name) for name in others if getattr(wm, name) is not None}
        log.info("latent distance: %d train samples (%d episodes), %d val samples (%d episodes)", len(self.dataset),
                 len(self.dataset.episodes), len(self.val_data), len(self.val_data.episodes))

    def loss(self, model: torch.nn.Module, batch, epoch: int, index: int) -> StepOutput:
        z_now, z_goal, steps = (t.to(self.dist_info.device) for t in batch)
        return StepOutput(model(z_now, z_goal, steps))

    def evaluate(self) -> dict[str, float]:
        errors = held_out_errors(self.distance, self.val_data, self.dist_info.device, self.cfg.train.batch_size,
                                 self.cfg.train.val_batches)
        return {k: all_reduce_mean(torch.tensor(v)).item() for k, v in errors.items()}


def rank_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman correlation of two 1-D series without ties (ranks by sorting); nan for fewer than 3 points."""
    if len(x) < 3:
        return float("nan")
    rx, ry = x.argsort().argsort().float(), y.argsort().argsort().float()
    return float(torch.corrcoef(torch.stack([rx, ry]))[0, 1])


@torch.no_grad()
def held_out_errors(distance: LatentDistance, data: StepSamples, device: torch.device, batch_size: int,
                    max_batches: int) -> dict[str, float]:
    """Mean absolute error in control steps over `max_batches` batches of a seeded shuffle of `data`, and the
    mean over episodes of the rank correlation between each frame's distance to the episode's last
    frame and the steps still to go (the ordering a planner relies on)."""
    distance.eval()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:batch_size * max_batches]
    errors = []
    for i in range(0, len(order), batch_size):
        z_now, z_goal, steps = (torch.stack(c).to(device) for c in zip(*(data[int(j)] for j in order[i:i + batch_size])))
        clipped = steps.float().clamp(max=distance.cfg.max_steps)
        errors.append((distance(z_now, z_goal) - clipped).abs())
    correlations = []
    for episode in data.episodes:
        z = episode.z.float().to(device)
        predicted = torch.cat([distance(z[i:i + batch_size], z[-1:]) for i in range(0, len(z), batch_size)])
        correlations.append(rank_correlation(predicted.cpu(), torch.arange(len(z), 0, -1).float()))
    distance.train()
    correlations = torch.tensor(correlations)
    return {"val/steps_mae": torch.cat(errors).mean().item(),
            "val/rank_to_last": correlations[correlations.isfinite()].mean().item()}


def train_latent_distance(cfg: DictConfig):
    """Train the distance as configured (configs/train_latent_distance.yaml); returns the checkpoint directory."""
    return train(cfg, lambda dist_info: LatentDistanceTraining(cfg, dist_info))
