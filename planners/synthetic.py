"""A linear latent world model with a known optimum: for testing planners and planning code
without a trained network (e.g. `tests/test_planners.py`, benchmark smoke tests)."""
from __future__ import annotations

import numpy as np
import torch

from planners.protocol import WorldModelDefaults


class LinearWorldModel(WorldModelDefaults):
    """z_{t+1} = z_t + (a_t / scale) @ M, with z of shape [N, D] flattened to N * D features.

    `encode` maps a frame to the mean colour of each of N horizontal bands, tiled to D features
    (enough for loops that encode frames); `rollout` is exact and differentiable. For a goal
    z_goal = z + (a* / scale) @ M, the "sum" energy over a horizon is minimised uniquely by
    a_1 = a*, a_t = 0 after (M is injective when N * D >= action_dim).
    """

    def __init__(self, action_dim: int = 7, num_tokens: int = 2, dim: int = 4, scale=1.0, seed: int = 0,
                 nan_fraction: float = 0.0):
        if num_tokens * dim < action_dim:
            raise ValueError(f"need num_tokens * dim >= action_dim for a unique optimum, got {num_tokens} * {dim} < {action_dim}")
        g = torch.Generator().manual_seed(seed)
        self.action_dim = action_dim
        self.num_tokens, self.dim = num_tokens, dim
        self.matrix = torch.randn((action_dim, num_tokens * dim), generator=g)
        self.scale = torch.as_tensor(np.asarray(scale, dtype=np.float32)).expand(action_dim)
        self.nan_fraction = nan_fraction  # share of candidates whose prediction is NaN (bad-input tests)
        self.batch_sizes: list[int] = []  # candidates per rollout call, for tests
        self.seen_actions: list[torch.Tensor] = []

    def latent_step(self, actions: torch.Tensor) -> torch.Tensor:
        """Latent change [..., N, D] caused by actions [..., A]."""
        delta = (actions / self.scale) @ self.matrix
        return delta.reshape(*actions.shape[:-1], self.num_tokens, self.dim)

    def encode(self, frames) -> torch.Tensor:
        frames = torch.as_tensor(np.asarray(frames), dtype=torch.float32) / 255.0  # [B, H, W, 3]
        bands = torch.stack([b.mean(dim=(1, 2, 3)) for b in frames.chunk(self.num_tokens, dim=1)], dim=1)
        return bands[:, :, None].expand(-1, -1, self.dim).contiguous()

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(actions.shape[0])
        self.seen_actions.append(actions.detach().clone())
        z_pred = z[:, None] + torch.cumsum(self.latent_step(actions), dim=1)  # [B, H, N, D]
        num_nan = int(round(self.nan_fraction * actions.shape[0]))
        if num_nan:
            z_pred = torch.cat([torch.full_like(z_pred[:num_nan], float("nan")), z_pred[num_nan:]])
        return z_pred
