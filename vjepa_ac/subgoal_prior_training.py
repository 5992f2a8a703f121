"""Training the subgoal prior (`vjepa_ac.models.subgoal_prior`) on robot logs, over a fine-tuned world model.

Like the goal-state head, the prior reads the frozen encoder's latents, so it trains after
fine-tuning and leaves the encoder, predictor and head untouched: the run loads a world-model
checkpoint, encodes every frame of the logs once (an episode cache beside fine-tuning's window
cache), and fits the prior to hindsight samples: for every frame `t` of a demonstration, the goal is
the episode's last frame (what a user's goal image shows) and, `future_goals` times, a later frame
drawn at random (more goals, the same lesson); the target is the demonstrated next keyframe toward
that goal (`keyframe_delta`). It writes `<output_dir>/checkpoint`: the same world model plus
`subgoal_prior.*` and a `world_model.subgoal_prior` config section, so `WorldModel.from_checkpoint`
reads it as one world model. Validation prints the held-out keyframe error in centimetres and the
gripper closure error.

With `data.observation: environment_state` the prior reads the logs' PRIVILEGED simulator state
(`observation.environment_state`: end effector, object, gripper closure) instead of frames, as one
token: the privileged oracle's prior, which proves the formulation before pixels are asked to. It
needs no world model and is written on its own (`subgoal_prior.*`, `load_subgoal_prior`).
"""
from __future__ import annotations

import logging

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from vjepa_ac import embedding_cache
from vjepa_ac.checkpoint import load_config
from vjepa_ac.data.lerobot_format import ENVIRONMENT_STATE_KEY
from vjepa_ac.data.robot_logs import RobotLogDataset
from vjepa_ac.finetune import check_data_root
from vjepa_ac.models.subgoal_prior import (SubgoalPrior, SubgoalPriorConfig, gripper_commands, keyframe_delta,
                                           keyframe_kind_names, keyframe_kinds)
from vjepa_ac.state_action import ENVIRONMENT_STATE_NAMES, GRIPPER_DIM, POSITION_DIMS
from vjepa_ac.train_loop import Objective, StepOutput, train
from vjepa_ac.training import DistInfo, adamw_param_groups, all_reduce_mean
from vjepa_ac.world_model import WorldModel, build_head

log = logging.getLogger(__name__)


OBSERVATIONS = ("frames", "environment_state")  # what the prior reads (data.observation)


def demonstrations(cfg: DictConfig, split: str, resolution: int | None,
                   camera_key: str | None = None) -> tuple[RobotLogDataset, list[int]]:
    """The robot logs' `split` and its episodes whose `policy` metadata is one of `cfg.data.policies`
    (e.g. `[expert]`: a prior learns where demonstrations go, not where random motion went; null: all),
    with `cfg.data.successful_only`, whose `success` metadata is true (a failed demonstration's
    retries, closing and opening again above a missed object, are not keyframes to copy) and, with
    `cfg.data.max_noise`, whose action `noise` metadata is at most that (under heavy noise the
    demonstration closes wherever its jitter first lands it within reach, a keyframe no input tells).
    Its frames are `camera_key`'s (default `cfg.data.camera_key`)."""
    data = cfg.data
    privileged = data.observation == "environment_state"
    dataset = RobotLogDataset(data.root, camera_key=camera_key or data.camera_key, state_key=data.state_key,
                              action_key=data.action_key, num_steps=2, split=split, resolution=resolution,
                              environment_state_key=ENVIRONMENT_STATE_KEY if privileged else None,
                              preload=False)  # frames decoded only if the episode cache misses
    episodes, meta = dataset.episodes, dataset.meta.episodes
    policies, max_noise = set(data.policies or []), data.max_noise
    filters = (("policy", bool(policies), lambda v: v in policies, "data.policies=null"),
               ("success", data.successful_only, lambda v: bool(v), "data.successful_only=false"),
               ("noise", max_noise is not None, lambda v: v <= max_noise, "data.max_noise=null"))
    for column, wanted, keep, off in filters:
        if not wanted:
            continue
        if column not in meta.columns:
            raise ValueError(f"{data.root}: the episode metadata has no '{column}' column (set {off} to use every "
                             "episode)")
        episodes = [e for e in episodes if keep(meta.loc[e, column])]
    if not episodes:
        raise ValueError(f"{data.root}: no {split} episode has policy in {list(policies)}"
                         f"{' and success' if data.successful_only else ''}"
                         f"{f' and noise <= {max_noise}' if max_noise is not None else ''}")
    return dataset, episodes


def first_demonstrated(dataset: RobotLogDataset, episodes: list[int]) -> list[int]:
    """Each episode's first frame whose action is the demonstrator's own: its `takeover` metadata (after a
    deliberate miss, `envs.ExpertWithMistakes`; the frames before it show where the miss went, not where a
    demonstration goes), 0 for logs without that column."""
    meta = dataset.meta.episodes
    if "takeover" not in meta.columns:
        return [0] * len(episodes)
    return [0 if pd.isna(v) else int(v) for v in meta.loc[episodes, "takeover"]]


def environment_state_episodes(dataset: RobotLogDataset, episodes: list[int]) -> list[embedding_cache.EpisodeLatents]:
    """PRIVILEGED: each episode's logged environment state as its latents, one token per frame `[T, 1, F]`."""
    return [embedding_cache.EpisodeLatents(torch.as_tensor(dataset.environment_states[e]).float()[:, None],
                                           torch.as_tensor(dataset.states[e]).float(),
                                           torch.as_tensor(dataset.actions[e]).float()) for e in episodes]


class KeyframeSamples(Dataset):
    """Hindsight samples over encoded episodes: item i is `(z_now [V * N, D], state_now [S], z_goal [N, D],
    read_now [S], read_goal [S], delta [S], kind [])` (readings: the goal-state head's, zeros without one;
    the goal: the first `goal_tokens` of its frame's tokens, the first view's, default all).

    The frames where a gripper command was issued count `command_weight` times: a demonstration
    spends one frame there, arrived at the object with the gripper open, and it is where the prior
    must switch from "go there" to "close" (without the weight it proposes a blend: half-way up,
    still open, and the robot hovers over the object). An episode's frames before its `first`
    demonstrated frame (`first_demonstrated`) are no samples."""

    def __init__(self, episodes: list[embedding_cache.EpisodeLatents], readings: list[torch.Tensor],
                 future_goals: int, seed: int, command_weight: int = 1, approach: int = 0,
                 first: list[int] | None = None, goal_tokens: int | None = None):
        generator = torch.Generator().manual_seed(seed)
        self.episodes, self.readings, self.goal_tokens = episodes, readings, goal_tokens
        self.samples: list[tuple[int, int, int]] = []  # (episode, frame, goal frame)
        self.first_reads: list[int] = []  # per episode, the sample of its first frame toward its last
        deltas, kinds = [], []
        for e, (episode, start) in enumerate(zip(episodes, first or [0] * len(episodes))):
            last = len(episode.states) - 1
            commands = gripper_commands(episode.actions)
            command_steps = {c for c, _ in commands}
            if start < last:
                self.first_reads.append(len(self.samples))
            for t in range(start, last):
                goals = [last] + torch.randint(t + 1, last + 1, (future_goals,), generator=generator).tolist()
                for goal in goals * (command_weight if t in command_steps else 1):
                    self.samples.append((e, t, goal))
                    delta, kind = keyframe_delta(episode.states, commands, t, goal, approach=approach)
                    deltas.append(delta)
                    kinds.append(kind)
        if not self.samples:
            raise ValueError("no episode has two frames: nothing to train the subgoal prior on")
        self.deltas, self.kinds = torch.stack(deltas), torch.tensor(kinds)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        e, t, goal = self.samples[i]
        episode, read = self.episodes[e], self.readings[e]
        return (episode.z[t].float(), episode.states[t], episode.z[goal, :self.goal_tokens].float(), read[t], read[goal],
                self.deltas[i], self.kinds[i])


def hindsight_samples(cfg: DictConfig, episodes: list[embedding_cache.EpisodeLatents], first: list[int],
                      read=None, goal_tokens: int | None = None) -> KeyframeSamples:
    """`cfg.hindsight`'s samples over `episodes` from each one's `first` demonstrated frame, with
    `read(z)` (the goal-state head, on the first `goal_tokens` tokens: the first view) giving each
    frame's readings (zeros without it)."""
    readings = [read(ep.z[:, :goal_tokens].float()).cpu() if read is not None else torch.zeros_like(ep.states)
                for ep in episodes]
    h = cfg.hindsight
    return KeyframeSamples(episodes, readings, h.future_goals, cfg.seed, h.command_weight, h.approach_steps, first,
                           goal_tokens)


class PriorLoss(torch.nn.Module):
    """The prior's loss on a batch (one module, for DDP)."""

    def __init__(self, prior: SubgoalPrior):
        super().__init__()
        self.prior = prior

    def forward(self, z_now, state_now, z_goal, read_now, read_goal, deltas, kinds) -> torch.Tensor:
        readings = (read_now, read_goal) if self.prior.cfg.reads_state else None
        return self.prior.loss(z_now, state_now, z_goal, readings, deltas, kinds)


class SubgoalPriorTraining(Objective):
    """The subgoal prior on the frozen latents of the world model at `cfg.world_model`."""

    name, unit = "subgoal_prior", "samples"

    def __init__(self, cfg: DictConfig, dist_info: DistInfo):
        check_data_root(cfg)
        if cfg.data.observation not in OBSERVATIONS:
            raise ValueError(f"data.observation must be one of {OBSERVATIONS}, got {cfg.data.observation!r}")
        self.cfg, self.dist_info = cfg, dist_info
        if cfg.data.observation == "environment_state":
            self._privileged_prior(cfg)
        else:
            wm = WorldModel.from_checkpoint(cfg.world_model, dist_info.device,
                                            heads=("state_head", "latent_distance"))  # not its prior
            self._prior_over(cfg, wm)
        episodes = self.dataset.episodes
        self.prior.set_stats(torch.cat([ep.z[::4].float() for ep in episodes]), torch.cat([ep.states for ep in episodes]),
                             self.dataset.deltas)
        self.optimizer = torch.optim.AdamW(adamw_param_groups(self.prior, cfg.optim.weight_decay),
                                           lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
        self.model = PriorLoss(self.prior)
        log.info("subgoal prior on %s: %d train samples (%d episodes), %d val samples (%d episodes)",
                 cfg.data.observation, len(self.dataset), len(self.dataset.episodes), len(self.val_data),
                 len(self.val_data.episodes))

    def _prior_over(self, cfg: DictConfig, wm: WorldModel) -> None:
        """The prior on the frozen latents of `wm` (and its goal-state head's readings)."""
        self.saved_config = load_config(cfg.world_model).copy()
        self.saved_config.world_model.subgoal_prior = prior_sizes(cfg)
        self.saved_config.subgoal_prior_run = OmegaConf.to_container(cfg, resolve=True)
        self.prior = build_head(self.saved_config.world_model, "subgoal_prior", wm.latents, wm.predictor).to(
            self.dist_info.device)
        if self.prior.cfg.reads_state and wm.state_head is None:
            raise ValueError(f"{cfg.world_model} has no goal-state head; train one first "
                             "(scripts/train_state_head.py) or set subgoal_prior.reads_state=false")
        def samples(split: str) -> KeyframeSamples:
            """Hindsight samples over the demonstrations' latents, every camera's tokens one after another."""
            cameras = [demonstrations(cfg, split, wm.resolution, key)
                       for key in [cfg.data.camera_key, *cfg.data.extra_camera_keys]]
            views = [embedding_cache.episode_latents(dataset, episodes, wm.latents, cfg.cache.dir,
                                                     cfg.cache.batch_size * 4, self.dist_info.is_main,
                                                     self.dist_info.device) for dataset, episodes in cameras]
            latents = [embedding_cache.EpisodeLatents(torch.cat([view[i].z for view in views], dim=1),
                                                      first.states, first.actions) for i, first in enumerate(views[0])]
            dataset, episodes = cameras[0]
            return hindsight_samples(cfg, latents, first_demonstrated(dataset, episodes), read,
                                     goal_tokens=self.prior.cfg.num_tokens)

        read = wm.decode_state if self.prior.cfg.reads_state else None
        self.dataset, self.val_data = samples("train"), samples("val")
        self.modules = {"encoder": wm.latents.encoder, "predictor": wm.predictor, "subgoal_prior": self.prior}
        for name in ("state_head", "latent_distance"):
            if getattr(wm, name) is not None:
                self.modules[name] = getattr(wm, name)

    def _privileged_prior(self, cfg: DictConfig) -> None:
        """PRIVILEGED: the prior on the logs' environment state, saved on its own."""
        if cfg.subgoal_prior.reads_state:
            raise ValueError("data.observation=environment_state has no goal-state head to read: "
                             "set subgoal_prior.reads_state=false")
        if cfg.data.extra_camera_keys:
            raise ValueError("data.observation=environment_state reads no camera: set data.extra_camera_keys=[]")
        sizes = {"num_tokens": 1, "embed_dim": len(ENVIRONMENT_STATE_NAMES), **prior_sizes(cfg)}
        self.saved_config = OmegaConf.create({"subgoal_prior": sizes,
                                              "subgoal_prior_run": OmegaConf.to_container(cfg, resolve=True)})
        self.prior = SubgoalPrior(SubgoalPriorConfig(**sizes)).to(self.dist_info.device)
        def samples(split: str) -> KeyframeSamples:
            dataset, episodes = demonstrations(cfg, split, None)
            return hindsight_samples(cfg, environment_state_episodes(dataset, episodes),
                                     first_demonstrated(dataset, episodes))

        self.dataset, self.val_data = samples("train"), samples("val")
        self.modules = {"subgoal_prior": self.prior}

    def loss(self, model: torch.nn.Module, batch, epoch: int, index: int) -> StepOutput:
        *inputs, kinds = (t.to(self.dist_info.device) for t in batch)
        return StepOutput(model(*(t.float() for t in inputs), kinds))

    def evaluate(self) -> dict[str, float]:
        errors = held_out_errors(self.prior, self.val_data, self.dist_info.device, self.cfg.train.batch_size,
                                 self.cfg.train.val_batches, keyframe_kind_names(self.cfg.hindsight.approach_steps))
        return {k: all_reduce_mean(torch.tensor(v)).item() for k, v in errors.items()}


def _predict(prior: SubgoalPrior, data: KeyframeSamples, indices: list[int], device: torch.device):
    """The prior's keyframe deltas and kinds for `data`'s samples `indices`, and the samples' own."""
    *batch, kinds = [torch.stack(column).to(device) for column in zip(*(data[int(i)] for i in indices))]
    z_now, state_now, z_goal, read_now, read_goal, deltas = (t.float() for t in batch)
    readings = (read_now, read_goal) if prior.cfg.reads_state else None
    return *prior.predict(z_now, state_now, z_goal, readings), deltas, kinds


@torch.no_grad()
def held_out_errors(prior: SubgoalPrior, data: KeyframeSamples, device: torch.device, batch_size: int,
                    max_batches: int, kind_names: list[str]) -> dict[str, float]:
    """Keyframe position error (cm; median and 90th percentile: the hard frames, where a phase ends),
    mean closure error and keyframe-kind accuracy over `max_batches` batches of a seeded shuffle of
    `data`; the median error and accuracy of each kind (`kind_names`) the batches hold: how well
    the prior predicts each phase of a manipulation; and the kind accuracy at every episode's first
    frame toward its last (`first_frame_kind_accuracy`): the read a planner makes at an episode's
    start, where only the goal image tells a reach from a pick (most frames' kinds follow from the
    frame itself, so the overall accuracy hides this one)."""
    prior.eval()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:batch_size * max_batches]
    predicted, predicted_kinds, deltas, kinds = _predict(prior, data, order.tolist(), device)
    first_right = []  # in batches: every val episode's first frame at once could be many latents
    for i in range(0, len(data.first_reads), batch_size):
        _, first_kinds, _, first_targets = _predict(prior, data, data.first_reads[i:i + batch_size], device)
        first_right.append((first_kinds == first_targets).float())
    error, right = predicted - deltas, (predicted_kinds == kinds).float()
    prior.train()
    cm = error[:, list(POSITION_DIMS)].norm(dim=-1) * 100
    errors = {"val/keyframe_cm_median": cm.median().item(), "val/keyframe_cm_p90": cm.quantile(0.9).item(),
              "val/keyframe_gripper_mae": error[:, GRIPPER_DIM].abs().mean().item(),
              "val/keyframe_kind_accuracy": right.mean().item(),
              "val/first_frame_kind_accuracy": torch.cat(first_right).mean().item()}
    for kind, name in enumerate(kind_names):
        if (kinds == kind).any():
            errors |= {f"val/{name}_cm_median": cm[kinds == kind].median().item(),
                       f"val/{name}_kind_accuracy": right[kinds == kind].mean().item()}
    return errors


def prior_sizes(cfg: DictConfig) -> dict:
    """The prior's configured sizes, with one keyframe kind per kind of `cfg.hindsight`'s keyframes
    and a view per camera it reads."""
    return {**OmegaConf.to_container(cfg.subgoal_prior, resolve=True),
            "kinds": keyframe_kinds(cfg.hindsight.approach_steps), "views": 1 + len(cfg.data.extra_camera_keys)}


def train_subgoal_prior(cfg: DictConfig):
    """Train the prior as configured (configs/train_subgoal_prior.yaml); returns the checkpoint directory."""
    return train(cfg, lambda dist_info: SubgoalPriorTraining(cfg, dist_info))
