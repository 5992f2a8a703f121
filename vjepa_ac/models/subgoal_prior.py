"""The subgoal prior: from the current frame, the robot's state and the single goal image, the state
the robot should reach next (a learned, temporally abstract macro-action).

Why: the latent L1 energy to one goal image ranks the greedy trap (the gripper moved straight to
where the goal image shows it, the object untouched) closer than any state on the way to a pick and
place (docs/experiments.md, "Single goal image: flat vs two-level search"), so no search over that energy finds a detour through the
object. The robot logs hold the detours: they show where a demonstration went next on its way to
the frame it ended on. Trained on them with hindsight goals, the prior proposes the next *keyframe*:
the state where the demonstration issued its next gripper command (arrived, gripper as it was, at
the object it then closed on, or where it then released it), the state a few steps later (the
command done, in place), or, after the last one, the goal frame's state. A keyframe is a
macro-action of variable length (the summed action up to the next contact event), the phases of a
manipulation rather than a fixed number of control steps.

The next keyframe jumps where a phase ends: a frame 1.5 cm above the object is on its way to the
grasp, the frame at it is on its way up with the object. A regression onto one delta averages the
two sides of such a jump into a point that is neither (half-way to the place, still open: the robot
leaves before it grasps). So the prior tells the keyframe *kinds* apart (`keyframe_kind`: approach,
command and settle frames of a close and of an open command, and the goal), a logit each, with one
delta per kind, and proposes the delta of the most likely kind.

It reads the frozen encoder's latents like the goal-state head (each token projected to a few
features, the grid flattened in place) for the current frame and the goal, plus the measured state
and, when the world model has a goal-state head, that head's readings of both frames: the goal
state it reads and the difference from the present (the planner's `relative` goal state).

With `views` > 1 it also reads the current frame of further cameras (e.g. the wrist camera, where
the object is ~12 px wide against ~4 in the 64-px front view): `z_now` holds each view's tokens one
after another, each extra view with its own projection and normalisation. The goal stays the first
view's single image; the head reads the first view.

With `reads_change` it also reads the first view's goal tokens minus its current tokens through
their own projection: where the scene changes between now and the goal. A reach's goal image and a
pick-and-place's last frame both show the gripper open and hovering; only whether the ~4-px object
moved tells a reach from a place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from vjepa_ac.checkpoint import load_config, load_state_into, load_weights, split_prefix
from vjepa_ac.models.ac_predictor import scale_or_one
from vjepa_ac.state_action import GRIPPER_DIM, POSITION_DIMS, STATE_HIGH, STATE_LOW


@dataclass
class SubgoalPriorConfig:
    num_tokens: int          # latent tokens per frame
    embed_dim: int           # latent feature size
    state_dim: int = 7
    token_dim: int = 32      # features kept per token (current frame and goal: separate projections)
    width: int = 512         # hidden width of the MLP
    reads_state: bool = True  # also input the goal-state head's readings of both frames
    kinds: int = 1           # keyframe kinds told apart (`keyframe_kinds`; 1: one delta, no classification)
    views: int = 1           # camera views of the current frame (the goal: the first view's image alone)
    view_dropout: float = 0.0  # in training, the chance that a sample's extra views read as their mean
    reads_change: bool = False  # also read the first view's goal tokens minus its current tokens (own projection)


class ViewTokens(nn.Module):
    """An extra view's tokens `[B, N, D]` -> `[B, N * token_dim]`: normalised per feature, projected.
    In training, each sample's tokens read as the training mean with probability `dropout`, so the
    prior learns what the first view tells alone and what the extra view adds to it."""

    def __init__(self, embed_dim: int, token_dim: int, dropout: float = 0.0):
        super().__init__()
        self.project = nn.Linear(embed_dim, token_dim)
        self.dropout = dropout
        self.register_buffer("token_mean", torch.zeros(embed_dim))
        self.register_buffer("token_std", torch.ones(embed_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = (z - self.token_mean) / self.token_std
        if self.training and self.dropout > 0:
            z = z * (torch.rand(len(z), 1, 1, device=z.device) >= self.dropout)
        return self.project(z).flatten(1)


class SubgoalPrior(nn.Module):
    """`(z_now [B, V * N, D], state_now [B, S], z_goal [B, N, D], readings)` -> the next keyframe's
    state relative to `state_now`, `[B, S]`, in the state's units (normalised inside): the delta of
    the most likely keyframe kind. `readings` is `(head(z_now), head(z_goal))` of the first view, each
    `[B, S]`, when `reads_state`, else None."""

    def __init__(self, cfg: SubgoalPriorConfig):
        super().__init__()
        self.cfg = cfg
        self.project_now = nn.Linear(cfg.embed_dim, cfg.token_dim)
        self.project_goal = nn.Linear(cfg.embed_dim, cfg.token_dim)
        self.extra_views = nn.ModuleList(ViewTokens(cfg.embed_dim, cfg.token_dim, cfg.view_dropout)
                                         for _ in range(cfg.views - 1))
        inputs = ((cfg.views + 1 + cfg.reads_change) * cfg.num_tokens * cfg.token_dim
                  + cfg.state_dim * (3 if cfg.reads_state else 1))
        self.project_change = nn.Linear(cfg.embed_dim, cfg.token_dim) if cfg.reads_change else None
        self.mlp = nn.Sequential(nn.Linear(inputs, cfg.width), nn.GELU(), nn.Linear(cfg.width, cfg.width), nn.GELU(),
                                 nn.Linear(cfg.width, cfg.kinds * (cfg.state_dim + 1)))
        for name, size in (("token_mean", cfg.embed_dim), ("state_mean", cfg.state_dim), ("delta_mean", cfg.state_dim)):
            self.register_buffer(name, torch.zeros(size))
        for name, size in (("token_std", cfg.embed_dim), ("state_std", cfg.state_dim), ("delta_std", cfg.state_dim)):
            self.register_buffer(name, torch.ones(size))

    def set_stats(self, tokens: torch.Tensor, states: torch.Tensor, deltas: torch.Tensor, min_std: float = 1e-3) -> None:
        """Input and target normalisation from training latents `[F, V * N, D]` (per feature and view:
        an environment state's centimetres matter beside its metres), states and keyframe deltas `[..., S]`."""
        views = tokens.split(self.cfg.num_tokens, dim=1)
        buffers = [(self.token_mean, self.token_std)] + [(v.token_mean, v.token_std) for v in self.extra_views]
        stats = [(z, mean, std) for z, (mean, std) in zip(views, buffers, strict=True)]
        for values, mean, std in stats + [(states, self.state_mean, self.state_std), (deltas, self.delta_mean, self.delta_std)]:
            v = values.reshape(-1, values.shape[-1]).float()
            mean.copy_(v.mean(0))
            std.copy_(scale_or_one(v.std(0), min_std))

    def normalized(self, z_now, state_now, z_goal, readings=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each kind's keyframe delta in training units `[B, K, S]` and the kinds' logits `[B, K]`."""
        n, d, views = self.cfg.num_tokens, self.cfg.embed_dim, self.cfg.views
        for name, z, tokens in (("z_now", z_now, views * n), ("z_goal", z_goal, n)):
            if z.ndim != 3 or z.shape[1:] != (tokens, d):
                raise ValueError(f"the subgoal prior reads {name} [B, {tokens}, {d}], got {tuple(z.shape)}")
        if (readings is not None) != self.cfg.reads_state:
            raise ValueError(f"this subgoal prior {'needs' if self.cfg.reads_state else 'takes no'} goal-state "
                             "head readings")
        z_now, *z_extra = z_now.split(n, dim=1)
        z_now, z_goal = ((z - self.token_mean) / self.token_std for z in (z_now, z_goal))
        parts = [self.project_now(z_now).flatten(1), self.project_goal(z_goal).flatten(1),
                 *(view(z) for view, z in zip(self.extra_views, z_extra)),
                 *([self.project_change(z_goal - z_now).flatten(1)] if self.project_change is not None else []),
                 (state_now - self.state_mean) / self.state_std]
        if readings is not None:
            read_now, read_goal = readings
            parts += [(read_goal - read_now) / self.state_std, (read_goal - self.state_mean) / self.state_std]
        out = self.mlp(torch.cat(parts, -1)).unflatten(-1, (self.cfg.kinds, self.cfg.state_dim + 1))
        return out[..., :-1], out[..., -1]

    def forward(self, z_now, state_now, z_goal, readings=None) -> torch.Tensor:
        return self.predict(z_now, state_now, z_goal, readings)[0]

    def predict(self, z_now, state_now, z_goal, readings=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The likeliest kind's keyframe delta `[B, S]` (state units) and that kind `[B]`."""
        deltas, logits = self.normalized(z_now, state_now, z_goal, readings)
        kinds = logits.argmax(-1)
        return deltas[torch.arange(len(deltas)), kinds] * self.delta_std + self.delta_mean, kinds

    @torch.no_grad()
    def propose(self, z_now, state_now, z_goal, readings=None) -> torch.Tensor:
        """The next keyframe's state itself, `state_now + forward(...)`, clamped to the state bounds."""
        state = state_now + self(z_now, state_now, z_goal, readings)
        return state.clamp(torch.as_tensor(STATE_LOW, device=state.device), torch.as_tensor(STATE_HIGH, device=state.device))

    def loss(self, z_now, state_now, z_goal, readings, deltas, kinds) -> torch.Tensor:
        """L1 in normalised units between the demonstrated keyframe deltas `[B, S]` and the predicted
        delta of their kind `[B]`, plus the kinds' cross-entropy."""
        target = (deltas - self.delta_mean) / self.delta_std
        predicted, logits = self.normalized(z_now, state_now, z_goal, readings)
        own = predicted[torch.arange(len(predicted)), kinds]
        return (own - target).abs().mean() + nn.functional.cross_entropy(logits, kinds)


def load_subgoal_prior(path: str | Path) -> SubgoalPrior:
    """A prior saved on its own (`subgoal_prior.*` weights, sizes in the config's `subgoal_prior`), as
    the privileged one over the simulator's environment state is (it has no encoder to go with)."""
    cfg = load_config(path)
    if cfg.get("subgoal_prior") is None:
        raise ValueError(f"{Path(path) / 'config.yaml'} has no 'subgoal_prior' section: not a subgoal prior checkpoint")
    prior = SubgoalPrior(SubgoalPriorConfig(**OmegaConf.to_container(cfg.subgoal_prior, resolve=True)))
    load_state_into(prior, split_prefix(load_weights(path), "subgoal_prior"), source=f"{path} (subgoal_prior.*)")
    return prior.eval().requires_grad_(False)


def gripper_commands(actions: torch.Tensor, threshold: float = 0.3) -> list[tuple[int, bool]]:
    """`(step, closes)` of an episode's actions `[T, A]` where a gripper command starts: |gripper
    action| above `threshold` after a step below it (a demonstration closing on the object, positive,
    or releasing it)."""
    g = actions[:, GRIPPER_DIM]
    on = g.abs() > threshold
    return [(t, bool(g[t] > 0)) for t in range(1, len(g)) if on[t] and not on[t - 1]]


def keyframe_offsets(approach: int, settle: int = 4) -> tuple[int, ...]:
    """The keyframes' steps relative to each gripper command (see `keyframe_delta`)."""
    return (-approach, 0, settle) if approach > 0 else (0, settle)


def keyframe_kind_names(approach: int) -> list[str]:
    """The keyframe kinds in `keyframe_delta`'s order: each offset of a close and of an open command, then the goal."""
    def label(offset: int) -> str:
        return "_approach" if offset < 0 else "_settle" if offset > 0 else ""

    offsets = keyframe_offsets(approach)
    return [command + label(d) for command in ("close", "open") for d in offsets] + ["goal"]


def keyframe_kinds(approach: int) -> int:
    """How many keyframe kinds there are."""
    return len(keyframe_kind_names(approach))


def keyframe_delta(states: torch.Tensor, commands: list[tuple[int, bool]], t: int, goal: int, settle: int = 4,
                   arrived: float = 0.01, approach: int = 0) -> tuple[torch.Tensor, int]:
    """The demonstrated next keyframe of frame `t` toward frame `goal` (> t), relative to `states[t]`,
    and its kind (`keyframe_kinds(approach)` of them: offset `i` of a close command is kind `i`, of an
    open command `len(offsets) + i`, the goal the last).
    Keyframes are the frames of the gripper `commands`, each also `settle` steps later (the fingers
    closed on the object or opened) and, with `approach` > 0, that many steps before (where the
    demonstration came from: above the object, so a straight line to the next keyframe descends onto
    it rather than sweeping into it from the side), and the goal: the first one after `t` that frame `t` has not
    already arrived at (end effector within `arrived` m, gripper within 0.1). Two keyframes per
    command, "arrive with the gripper as it is" then "close (or open) and go on", as the subgoal
    images show a grasp; arrival by place rather than by time, because a frame one step before the
    command looks like the command's own frame, and a prior that saw both told apart only by time
    would hover there and never close. `states` is the episode's `[T, S]`, `commands` its
    `gripper_commands`."""
    def at(k: int) -> bool:
        return bool((states[k, list(POSITION_DIMS)] - states[t, list(POSITION_DIMS)]).norm() < arrived
                    and (states[k, GRIPPER_DIM] - states[t, GRIPPER_DIM]).abs() < 0.1)

    offsets = keyframe_offsets(approach, settle)
    kinds = {c + d: i + (0 if closes else len(offsets)) for c, closes in commands for i, d in enumerate(offsets)
             if 0 <= c + d < goal}
    kinds[goal] = keyframe_kinds(approach) - 1
    k = next((k for k in sorted(kinds) if t < k and not at(k)), goal)
    return states[k] - states[t], kinds[k]
