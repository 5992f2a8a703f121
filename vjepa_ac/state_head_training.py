"""Training the goal-state head (`vjepa_ac.models.state_head`) on robot logs, over a fine-tuned world model.

The head reads the frozen encoder's latents, so it trains after fine-tuning and leaves the encoder
and predictor untouched: the run loads a world-model checkpoint, fits the head to the logged state
of every frame (L1 in normalised units, latents from the same embedding cache fine-tuning uses) and
writes `<output_dir>/checkpoint`: the same encoder and predictor weights plus `state_head.*`, and the
source config with a `world_model.state_head` section, so `WorldModel.from_checkpoint` reads it as
one world model. Validation prints the held-out position error in centimetres and the gripper error.
"""
from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from vjepa_ac.checkpoint import load_config
from vjepa_ac.finetune import check_data_root, latent_dataset, robot_log_dataset, state_action_sample, to_latents
from vjepa_ac.models.state_head import StateHead
from vjepa_ac.state_action import GRIPPER_DIM, POSITION_DIMS, STATE_NAMES
from vjepa_ac.train_loop import Objective, StepOutput, train
from vjepa_ac.training import DistInfo, adamw_param_groups, all_reduce_mean
from vjepa_ac.world_model import WorldModel, build_head

log = logging.getLogger(__name__)


class HeadLoss(torch.nn.Module):
    """The head's loss on every frame of a batch of windows (one module, for DDP)."""

    def __init__(self, head: StateHead):
        super().__init__()
        self.head = head

    def forward(self, z: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return self.head.loss(z.flatten(0, 1), states.flatten(0, 1))


class StateHeadTraining(Objective):
    """The goal-state head on the frozen latents of the world model at `cfg.world_model`."""

    name, unit = "state_head", "windows"

    def __init__(self, cfg: DictConfig, dist_info: DistInfo):
        check_data_root(cfg)
        self.cfg, self.dist_info = cfg, dist_info
        device = dist_info.device
        source = load_config(cfg.world_model)
        wm = WorldModel.from_checkpoint(cfg.world_model, device)
        self.latents = wm.latents
        pcfg = wm.predictor.cfg
        train_raw = robot_log_dataset(cfg.data, "train", pcfg, wm.resolution)
        val_raw = robot_log_dataset(cfg.data, "val", pcfg, wm.resolution)
        self.cached = bool(cfg.cache.enabled)
        self.dataset = latent_dataset(cfg, train_raw, self.latents, "train", dist_info.is_main, device)
        self.val_data = latent_dataset(cfg, val_raw, self.latents, "val", dist_info.is_main, device)
        self.num_workers = 0 if self.cached else cfg.data.num_workers

        self.saved_config = source.copy()
        # A subgoal prior in the source read the old head's states: it is not carried over (retrain it).
        self.saved_config.world_model.pop("subgoal_prior", None)
        self.saved_config.pop("subgoal_prior_run", None)
        self.saved_config.world_model.state_head = OmegaConf.to_container(cfg.state_head, resolve=True)
        self.saved_config.state_head_run = OmegaConf.to_container(cfg, resolve=True)
        self.head = build_head(self.saved_config.world_model, "state_head", self.latents, wm.predictor).to(device)
        self.head.set_state_stats(state_action_sample(self.dataset)[0])
        self.optimizer = torch.optim.AdamW(adamw_param_groups(self.head, cfg.optim.weight_decay),
                                           lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
        self.model = HeadLoss(self.head)
        self.modules = {"encoder": wm.latents.encoder, "predictor": wm.predictor, "state_head": self.head}
        if wm.latent_distance is not None:  # it reads latents alone: carried over unchanged
            self.modules["latent_distance"] = wm.latent_distance
        log.info("state head on %s: %d train windows, %d val windows", cfg.world_model, len(self.dataset),
                 len(self.val_data))

    def loss(self, model: torch.nn.Module, batch, epoch: int, index: int) -> StepOutput:
        z, states, _ = to_latents(batch, self.latents, self.cached, self.dist_info.device)
        return StepOutput(model(z, states))

    def evaluate(self) -> dict[str, float]:
        errors = held_out_errors(self.head, self.val_data, self.latents, self.cached, self.dist_info.device,
                                 self.cfg.train.batch_size, self.cfg.train.val_batches)
        return {k: all_reduce_mean(torch.tensor(v)).item() for k, v in errors.items()}


LOW_Z, CLOSED = 0.05, 0.3  # m, closure: frames where grasps happen (end effector near the table, fingers on an object)
HEIGHT_DIM = STATE_NAMES.index("z")


@torch.no_grad()
def held_out_errors(head: StateHead, data: Dataset, latents, cached: bool, device: torch.device, batch_size: int,
                    max_batches: int) -> dict[str, float]:
    """Mean and median end-effector position error (cm) and mean gripper error of the first
    `max_batches` batches of `data` (every frame of each window); and the same where grasps happen,
    the end effector below LOW_Z: the position's median, and the closure's mean error on frames closed
    past CLOSED (a gripper closed on an object on the table: the subgoal image a grasp needs read)."""
    head.eval()
    position, gripper, low, closed = [], [], [], []
    for i, batch in enumerate(DataLoader(data, batch_size=batch_size, shuffle=False)):
        if i >= max_batches:
            break
        z, states, _ = to_latents(batch, latents, cached, device)
        states = states.flatten(0, 1)
        error = head(z.flatten(0, 1)) - states
        position.append(error[:, list(POSITION_DIMS)].norm(dim=-1) * 100)
        gripper.append(error[:, GRIPPER_DIM].abs())
        low.append(states[:, HEIGHT_DIM] < LOW_Z)
        closed.append(states[:, GRIPPER_DIM] >= CLOSED)
    head.train()
    position, gripper, low, closed = torch.cat(position), torch.cat(gripper), torch.cat(low), torch.cat(closed)
    nan = torch.tensor(float("nan"))
    return {"val/position_cm_mean": position.mean().item(), "val/position_cm_median": position.median().item(),
            "val/gripper_mae": gripper.mean().item(),
            "val/low_position_cm_median": (position[low].median() if low.any() else nan).item(),
            "val/low_closed_gripper_mae": (gripper[low & closed].mean() if (low & closed).any() else nan).item()}


def train_state_head(cfg: DictConfig):
    """Train the head as configured (configs/train_state_head.yaml); returns the checkpoint directory."""
    return train(cfg, lambda dist_info: StateHeadTraining(cfg, dist_info))
