"""The goal-state head: the robot's proprioceptive state read back from one frame's latents.

A goal image says where the robot should be, but the planner's latent L1 energy ranks nearby
end-effector positions poorly (docs/experiments.md, the offline model report). The robot logs record the state behind
every frame, so a small head on the frozen latents learns to read the state from an image; the
planner then adds the distance between its integrated state and the state read from the goal image
to the energy (`planners.base.Planner`, `state_weight`). DINO-WM's planning cost compares
proprioception too, but takes the goal's from the simulator; here it comes from the goal image.

Each token is projected to a few features first and the grid is flattened in place, so the head
knows where in the image each token sits (a position is a place in the image, which a mean over
tokens would lose).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vjepa_ac.models.ac_predictor import scale_or_one


@dataclass
class StateHeadConfig:
    num_tokens: int          # latent tokens per frame (the pooled grid's cells)
    embed_dim: int           # latent feature size
    state_dim: int = 7
    token_dim: int = 32      # features kept per token
    width: int = 256         # hidden width of the MLP


class StateHead(nn.Module):
    """Latents `[B, N, D]` -> state `[B, S]`, in the state's units (normalised inside)."""

    def __init__(self, cfg: StateHeadConfig):
        super().__init__()
        self.cfg = cfg
        self.project = nn.Linear(cfg.embed_dim, cfg.token_dim)
        self.mlp = nn.Sequential(nn.Linear(cfg.num_tokens * cfg.token_dim, cfg.width), nn.GELU(),
                                 nn.Linear(cfg.width, cfg.width), nn.GELU(), nn.Linear(cfg.width, cfg.state_dim))
        self.register_buffer("state_mean", torch.zeros(cfg.state_dim))
        self.register_buffer("state_std", torch.ones(cfg.state_dim))

    def set_state_stats(self, states: torch.Tensor, min_std: float = 1e-3) -> None:
        """Mean and std of the training states `[..., S]`; constant dimensions keep scale 1."""
        s = states.reshape(-1, self.cfg.state_dim).float()
        self.state_mean.copy_(s.mean(0))
        self.state_std.copy_(scale_or_one(s.std(0), min_std))

    def normalized(self, z: torch.Tensor) -> torch.Tensor:
        """The state in training units (zero mean, unit std per dimension), `[B, S]`."""
        if z.ndim != 3 or z.shape[1:] != (self.cfg.num_tokens, self.cfg.embed_dim):
            raise ValueError(f"the state head reads latents [B, {self.cfg.num_tokens}, {self.cfg.embed_dim}], "
                             f"got {tuple(z.shape)}")
        return self.mlp(self.project(z).flatten(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.normalized(z) * self.state_std + self.state_mean

    def loss(self, z: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """L1 in normalised units between the state read from latents `[B, N, D]` and the true `[B, S]`."""
        return (self.normalized(z) - (states - self.state_mean) / self.state_std).abs().mean()
