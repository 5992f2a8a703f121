"""The WorldModel: frozen video encoder + action-conditioned predictor, the API planners call.

    wm = WorldModel.from_checkpoint("runs/finetune/checkpoint")
    z = wm.encode(frames)                  # uint8 [B, H, W, 3] -> z [B, N, D]
    z_pred = wm.rollout(z, state, actions) # z [1|B, N, D], state [1|B, 7], actions [B, H, 7] -> [B, H, N, D]

Latents `z` are the encoder's tokens of one frame (encoded alone, as a 2-frame tubelet), average-
pooled over `pool x pool` patches (`pool: 1` keeps every token) and layer-normed without affine, the
same normalisation as the pretraining targets. The predictor reads and writes this space, so a
planner's energy is simply an L1 distance between latents.

A checkpoint directory (written by fine-tuning, `vjepa_ac/checkpoint.py` layout) holds
`model.safetensors` (keys `encoder.*`, `predictor.*`) and `config.yaml`, whose `world_model` section
is everything needed to rebuild the two modules: the encoder's `VJEPA2Config` fields, `pool`, and
the predictor sizes. A checkpoint written by `scripts/train_state_head.py` also holds the goal-state
head (keys `state_head.*`, sizes in `world_model.state_head`): `decode_state(z)` reads the robot's
state from latents, which the planners' `state_weight` energy term applies to the goal image. One
written by `scripts/train_subgoal_prior.py` also holds the subgoal prior (keys `subgoal_prior.*`,
sizes in `world_model.subgoal_prior`): `propose_subgoal(z_now, state_now, z_goal)` is the state to
reach next on the way to a goal image, which the two-level planner's high level proposes. One
written by `scripts/train_latent_distance.py` also holds the learned latent distance (keys
`latent_distance.*`, sizes in `world_model.latent_distance`): `distance(z, z_goal)` is the number of
control steps from a frame to a goal image read from their latents, the planners' `latent_energy: learned`.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vjepa_ac.checkpoint import load_config, load_state_into, load_weights, split_prefix
from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.training import resolve_device
from vjepa_ac.models.ac_predictor import ACPredictor, ACPredictorConfig
from vjepa_ac.models.latent_distance import LatentDistance, LatentDistanceConfig
from vjepa_ac.models.state_head import StateHead, StateHeadConfig
from vjepa_ac.models.subgoal_prior import SubgoalPrior, SubgoalPriorConfig
from vjepa_ac.state_action import STATE_HIGH, STATE_LOW


def encoder_fields(config) -> dict[str, Any]:
    """The `VJEPA2Config` fields that define the encoder's shapes (what a checkpoint must record)."""
    keys = ("patch_size", "crop_size", "frames_per_clip", "tubelet_size", "hidden_size", "in_chans",
            "num_attention_heads", "num_hidden_layers", "mlp_ratio", "layer_norm_eps", "qkv_bias", "hidden_act")
    return {k: getattr(config, k) for k in keys}


class FrameLatents(nn.Module):
    """Frozen encoder -> per-frame latents: each frame alone (a 2-frame tubelet), pooled, layer-normed."""

    def __init__(self, encoder: nn.Module, crop_size: int, patch_size: int, pool: int = 1):
        super().__init__()
        side = crop_size // patch_size
        if side % pool != 0:
            raise ValueError(f"latent pool={pool} does not divide the encoder's {side}x{side} patch grid "
                             f"(crop_size {crop_size} / patch_size {patch_size})")
        self.encoder = encoder.eval().requires_grad_(False)
        self.crop_size, self.side, self.pool = crop_size, side, pool

    @property
    def grid(self) -> tuple[int, int]:
        return (self.side // self.pool, self.side // self.pool)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames `[B, C, H, W]` or `[B, T, C, H, W]` -> latents `[B, N, D]` or `[B, T, N, D]`."""
        lead = frames.shape[:-3]
        if tuple(frames.shape[-2:]) != (self.crop_size, self.crop_size):
            raise ValueError(f"frames are {tuple(frames.shape[-2:])} pixels, the encoder expects "
                             f"{self.crop_size}x{self.crop_size} (crop_size)")
        x = frames.reshape(-1, *frames.shape[-3:])
        tokens = self.encoder(x.unsqueeze(1).expand(-1, 2, -1, -1, -1))  # [B', side*side, D]
        if tokens.shape[1] != self.side * self.side:
            raise ValueError(f"encoder returned {tokens.shape[1]} tokens per frame, expected {self.side ** 2}")
        if self.pool > 1:
            grid = tokens.transpose(1, 2).unflatten(2, (self.side, self.side))
            tokens = F.avg_pool2d(grid, self.pool).flatten(2).transpose(1, 2)
        z = F.layer_norm(tokens, (tokens.shape[-1],))
        return z.reshape(*lead, *z.shape[1:])


def build_modules(spec: DictConfig | dict) -> tuple[FrameLatents, ACPredictor]:
    """Randomly initialised encoder + predictor from a `world_model` spec (see module docstring)."""
    from vjepa_ac.models.encoder import VideoEncoder, vjepa2_config

    spec = OmegaConf.create(spec) if isinstance(spec, dict) else spec
    enc_cfg = vjepa2_config(spec.encoder)
    latents = FrameLatents(VideoEncoder(enc_cfg), enc_cfg.crop_size, enc_cfg.patch_size, int(spec.pool))
    predictor = ACPredictor(ACPredictorConfig(embed_dim=enc_cfg.hidden_size, grid=latents.grid,
                                              **OmegaConf.to_container(spec.predictor, resolve=True)))
    return latents, predictor


# Heads on the frozen latents a checkpoint may hold: weight prefix and `world_model` config section -> module, config
HEADS = {"state_head": (StateHead, StateHeadConfig), "subgoal_prior": (SubgoalPrior, SubgoalPriorConfig),
         "latent_distance": (LatentDistance, LatentDistanceConfig)}


def build_head(spec: DictConfig, name: str, latents: FrameLatents, predictor: ACPredictor) -> nn.Module | None:
    """A randomly initialised head `name` (a key of HEADS) sized for these latents, when the
    `world_model` spec has a section of that name (its own sizes); None without one."""
    if spec.get(name) is None:
        return None
    module, config = HEADS[name]
    grid = latents.grid
    sizes = {"num_tokens": grid[0] * grid[1], "embed_dim": predictor.cfg.embed_dim}
    if "state_dim" in {f.name for f in fields(config)}:
        sizes["state_dim"] = predictor.cfg.state_dim
    return module(config(**sizes, **OmegaConf.to_container(spec[name], resolve=True)))


def config_frame_stride(cfg: DictConfig) -> int:
    """Control steps per predicted step of a fine-tuning run's config (its data.reader.frame_stride)."""
    return int(OmegaConf.select(cfg, "data.reader.frame_stride", default=1))


def checkpoint_frame_stride(path: str | Path) -> int:
    """`config_frame_stride` of a fine-tuning checkpoint directory."""
    return config_frame_stride(load_config(path))


class WorldModel(nn.Module):
    """Frozen encoder + action-conditioned predictor, for planning (docs/architecture.md,
    "WorldModel"). It sees pixels and proprioception only: `privileged` is False."""

    privileged = False
    views = ("pixels",)  # one camera: the env's obs["pixels"] (several: planners.views.MultiViewWorldModel)

    def __init__(self, latents: FrameLatents, predictor: ACPredictor, spec: DictConfig | dict,
                 state_head: StateHead | None = None, subgoal_prior: SubgoalPrior | None = None,
                 latent_distance: LatentDistance | None = None):
        super().__init__()
        if subgoal_prior is not None and subgoal_prior.cfg.reads_state and state_head is None:
            raise ValueError("the subgoal prior reads the goal-state head's readings, but the world model has no head")
        self.latents = latents
        self.predictor = predictor.eval().requires_grad_(False)
        self.state_head = state_head.eval().requires_grad_(False) if state_head is not None else None
        self.subgoal_prior = subgoal_prior.eval().requires_grad_(False) if subgoal_prior is not None else None
        self.latent_distance = latent_distance.eval().requires_grad_(False) if latent_distance is not None else None
        self.spec = OmegaConf.create(spec) if isinstance(spec, dict) else spec
        # control steps per predicted step: 1, or k for a high-level model fine-tuned on frames read
        # every k control steps (data.reader.frame_stride), whose action is the summed k-step action
        self.frame_stride = 1

    @property
    def action_dim(self) -> int:
        return self.predictor.cfg.action_dim

    @property
    def state_dim(self) -> int:
        return self.predictor.cfg.state_dim

    @property
    def resolution(self) -> int:
        return self.latents.crop_size

    @property
    def device(self) -> torch.device:
        return next(self.predictor.parameters()).device

    def shares_encoder(self, other: "WorldModel") -> bool:
        """Same encoder weights and token pooling, so latents of one are valid inputs and goals of the other."""
        mine, theirs = self.latents.encoder.state_dict(), other.latents.encoder.state_dict()
        return (self.latents.pool == other.latents.pool and mine.keys() == theirs.keys()
                and all(torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine))

    @classmethod
    def from_config(cls, spec: DictConfig | dict, seed: int = 0) -> "WorldModel":
        """A world model with random weights (timing and tests), from a `world_model` spec."""
        torch.manual_seed(seed)
        return cls(*build_modules(spec), spec)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        heads: tuple[str, ...] = tuple(HEADS)) -> "WorldModel":
        """Encoder + predictor + config from one fine-tuning checkpoint directory, on `device`
        ("auto": the GPU when one is visible), with those of the `heads` it holds (a run that trains
        one anew leaves the old one out: its sizes may differ)."""
        cfg = load_config(path)
        if "world_model" not in cfg:
            raise ValueError(f"{Path(path) / 'config.yaml'} has no 'world_model' section: not a fine-tuning checkpoint")
        latents, predictor = build_modules(cfg.world_model)
        built = {name: build_head(cfg.world_model, name, latents, predictor) if name in heads else None
                 for name in HEADS}
        weights = load_weights(path)
        load_state_into(latents.encoder, split_prefix(weights, "encoder"), source=f"{path} (encoder.*)")
        load_state_into(predictor, split_prefix(weights, "predictor"), source=f"{path} (predictor.*)")
        for name, head in built.items():
            if head is not None:
                load_state_into(head, split_prefix(weights, name), source=f"{path} ({name}.*)")
        model = cls(latents, predictor, cfg.world_model, **built).to(resolve_device(device))
        model.frame_stride = config_frame_stride(cfg)
        return model

    def _as_tensor(self, x, name: str, last_dim: int) -> torch.Tensor:
        # no copy if already float32
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        if x.ndim < 2 or x.shape[-1] != last_dim:
            raise ValueError(f"{name} must be [..., {last_dim}], got {tuple(x.shape)} "
                             f"(the world model's {name} dimension is {last_dim})")
        return x.to(self.device)

    @torch.inference_mode()
    def encode(self, frames) -> torch.Tensor:
        """uint8 frames `[B, H, W, 3]` (numpy or tensor) -> latents `[B, N, D]`."""
        x = normalize_frames(frames)
        if x.ndim != 4:
            raise ValueError(f"encode expects frames [B, H, W, 3], got {tuple(np.shape(frames))}")
        return self.latents(x.to(self.device))

    def encode_goal(self, frames) -> torch.Tensor:
        """A goal image is encoded like any frame."""
        return self.encode(frames)

    @torch.inference_mode()
    def decode_state(self, z: torch.Tensor) -> torch.Tensor:
        """The robot state read from latents `[B, N, D]` by the goal-state head -> `[B, S]`."""
        if self.state_head is None:
            raise ValueError("this world model has no goal-state head (a planner's state_weight needs one): "
                             "train it with scripts/train_state_head.py")
        return self.state_head(z.to(self.device).float())

    def distance(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """The learned latent distance, in control steps, from latents `[B, N, D]` to goal latents
        `[1|B, N, D]` -> `[B]`: the planner's `latent_energy: learned`. Differentiable (gradient planners)."""
        if self.latent_distance is None:
            raise ValueError("this world model has no learned latent distance (a planner's latent_energy: learned "
                             "needs one): train it with scripts/train_latent_distance.py")
        return self.latent_distance(z.to(self.device).float(), z_goal.to(self.device).float())

    @torch.inference_mode()
    def propose_subgoal(self, z_now: torch.Tensor, state_now, z_goal: torch.Tensor) -> torch.Tensor:
        """The subgoal prior's next state on the way to the goal latents: `[B, S]`, the measured state
        `state_now` `[B, S]` plus the predicted keyframe delta, clamped to the state bounds. With a
        prior over several views, `z_now` is theirs one after another (`planners.views`) and `z_goal`
        the first view's; the head reads the first view."""
        if self.subgoal_prior is None:
            raise ValueError("this world model has no subgoal prior (the two-level planner's high level needs "
                             "one): train it with scripts/train_subgoal_prior.py")
        state_now = self._as_tensor(state_now, "state", self.state_dim)
        z_now, z_goal = z_now.to(self.device).float(), z_goal.to(self.device).float()
        first = z_now[:, :self.subgoal_prior.cfg.num_tokens]
        readings = (self.state_head(first), self.state_head(z_goal)) if self.subgoal_prior.cfg.reads_state else None
        return self.subgoal_prior.propose(z_now, state_now, z_goal, readings)

    @property
    def predicts_state(self) -> bool:
        """Whether the predictor predicts the next robot state (learned proprioception) rather than
        the rollout integrating `state + action`."""
        return self.predictor.cfg.predicts_state

    def rollout(self, z: torch.Tensor, state, actions) -> torch.Tensor:
        """Predict latents of the next H frames for B candidate action sequences at once: `[B, H, N, D]`
        (`rollout_with_states`' latents)."""
        return self.rollout_with_states(z, state, actions)[0]

    def rollout_with_states(self, z: torch.Tensor, state, actions) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict latents and robot states of the next H frames for B candidate action sequences at once.

        z `[1|B, N, D]`, state `[1|B, 7]`, actions `[B, H, 7]` -> latents `[B, H, N, D]` and states
        `[B, H, 7]`. The states are the predictor's (`predicts_state`) or else integrated
        (`state + action`), returned clamped to the state bounds; each step's is the next step's
        input (an integrated one unclamped, as in fine-tuning's rollout loss). A batch-1 z/state is embedded once and
        broadcast; each step adds one block per candidate and reuses the earlier blocks' keys and
        values (KV cache). Runs under `torch.inference_mode` unless `actions` requires grad (gradient
        planners).
        """
        actions = self._as_tensor(actions, "action", self.action_dim)
        state = self._as_tensor(state, "state", self.state_dim)
        if actions.ndim != 3:
            raise ValueError(f"actions must be [B, H, {self.action_dim}], got {tuple(actions.shape)}")
        if z.ndim != 3 or state.ndim != 2 or z.shape[0] not in (1, actions.shape[0]) \
                or state.shape[0] not in (1, actions.shape[0]):
            raise ValueError(f"rollout expects z [1|B, N, D], state [1|B, {self.state_dim}] with B = "
                             f"{actions.shape[0]}; got z {tuple(z.shape)}, state {tuple(state.shape)}")
        if actions.requires_grad:
            with torch.enable_grad():  # z may come from encode() (an inference tensor): use a copy
                return self._rollout(z.to(self.device).clone(), state, actions)
        with torch.inference_mode():
            return self._rollout(z.to(self.device), state, actions)

    def _rollout(self, z: torch.Tensor, state: torch.Tensor,
                 actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.predictor.new_cache()
        low, high = torch.as_tensor(STATE_LOW, device=self.device), torch.as_tensor(STATE_HIGH, device=self.device)
        latents, states = [], []
        for h in range(actions.shape[1]):
            z, predicted = self.predictor.step(z, state, actions[:, h], cache)
            # an integrated state is fed back unclamped, as the predictor was trained on windows' sums
            state = state + actions[:, h] if predicted is None else predicted.clamp(low, high)
            latents.append(z)
            states.append(state.clamp(low, high))
        return torch.stack(latents, dim=1), torch.stack(states, dim=1)
