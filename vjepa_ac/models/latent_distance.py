"""The learned latent distance: how many control steps separate a frame from a goal image, read from latents.

The L1 distance between latents ranks task progress no better than raw pixels (docs/experiments.md,
"Does the energy rank progress?"): most of a frame's latent is the arm, the object is a few pixels,
and the L1 weighs every feature alike. The robot logs say what progress is without any simulator
state: a frame `t` of an episode is `g - t` control steps from its later frame `g` (hindsight goals,
as in goal-conditioned RL's temporal distances). A small head on the frozen latents of both frames
learns that count, and the planner's latent energy can be this distance of the predicted latents to
the goal image's instead of their L1 (`planners.base.Planner`, `latent_energy: learned`): the world
model still predicts, the head only measures.

Each token is projected to a few features (shared by the two frames) and the grid is flattened in
place, as in the goal-state head; the MLP reads the frame's, the goal's and their absolute
difference, so "the object has not moved yet" is as easy to see as "the arm is far".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LatentDistanceConfig:
    num_tokens: int          # latent tokens per frame (the pooled grid's cells)
    embed_dim: int           # latent feature size
    token_dim: int = 32      # features kept per token
    width: int = 512         # hidden width of the MLP
    max_steps: int = 64      # distances are learned as a fraction of this many control steps (longer ones clipped)


class LatentDistance(nn.Module):
    """Latents of frames `[B, N, D]` and of goals `[1|B, N, D]` -> distances `[B]` in control steps (>= 0)."""

    def __init__(self, cfg: LatentDistanceConfig):
        super().__init__()
        self.cfg = cfg
        self.project = nn.Linear(cfg.embed_dim, cfg.token_dim)
        inputs = 3 * cfg.num_tokens * cfg.token_dim
        self.mlp = nn.Sequential(nn.Linear(inputs, cfg.width), nn.GELU(), nn.Linear(cfg.width, cfg.width), nn.GELU(),
                                 nn.Linear(cfg.width, 1))

    def fraction(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """The distance as a fraction of `max_steps`, `[B]`, unclipped: training fits it (a softplus or a
        clamp here would stop the gradient of every sample it sends to zero, and the head stays there)."""
        expected = (self.cfg.num_tokens, self.cfg.embed_dim)
        if z.ndim != 3 or z.shape[1:] != expected or z_goal.ndim != 3 or z_goal.shape[1:] != expected \
                or z_goal.shape[0] not in (1, z.shape[0]):
            raise ValueError(f"the latent distance reads frames [B, {expected[0]}, {expected[1]}] and goals "
                             f"[1|B, {expected[0]}, {expected[1]}], got {tuple(z.shape)} and {tuple(z_goal.shape)}")
        now = self.project(z).flatten(1)
        goal = self.project(z_goal).flatten(1).expand_as(now)
        return self.mlp(torch.cat([now, goal, (now - goal).abs()], dim=-1)).squeeze(-1)

    def forward(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        return self.fraction(z, z_goal).clamp(min=0) * self.cfg.max_steps

    def loss(self, z: torch.Tensor, z_goal: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """L1 between the predicted and the logged step counts `[B]`, as fractions of `max_steps` (clipped at 1)."""
        target = (steps.float() / self.cfg.max_steps).clamp(max=1.0)
        return (self.fraction(z, z_goal) - target).abs().mean()
