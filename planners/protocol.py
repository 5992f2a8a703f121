"""What a planner needs from a world model (DESIGN.md contract), as a structural type."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class WorldModel(Protocol):
    """Anything with `encode` and `rollout`: the learned `vjepa_ac.WorldModel`, the privileged
    simulator oracle (`planners.oracle`), or a synthetic model in tests.

    A world model may also expose `action_dim: int` (checked against the env's action space) and
    `encode_goal(frames)` (used for the goal instead of `encode`; the privileged oracle needs it
    because its goal is the goal *state*, not an image).
    """

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, H, W, 3] -> embeddings z [B, N, D]."""
        ...

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z [1 or B, N, D], state [1 or B, 7], actions [B, H, 7] -> predicted z [B, H, N, D]."""
        ...
