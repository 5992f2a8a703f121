"""What a planner and the MPC loop need from a world model, as a structural type.

The contract (docs/architecture.md, "WorldModel"): `encode` frames to embeddings, `encode_goal` a
goal image (the same as `encode` for a learned model), `rollout` a batch of candidate action
sequences, and the facts the loop checks before it plans: `action_dim`, `resolution` (None when
any frame size will do), `privileged` (True when the model reads the simulator) and `views` (the
observation keys it encodes: ("pixels",) for one camera, frames [B, H, W, 3]; with several views
frames are [B, V, H, W, 3], see `planners.views`).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class WorldModel(Protocol):
    """The learned `vjepa_ac.WorldModel`, the privileged simulator oracle (`planners.oracle`),
    `planners.policy.NullWorldModel` and the synthetic test models all satisfy it."""

    privileged: bool  # reads simulator state (a baseline, never the learned planner)
    action_dim: int | None  # checked against the env's action space; None: any
    resolution: int | None  # square frame size the model encodes; None: any
    views: tuple[str, ...]  # observation keys encoded, in order (goal images: "goal_<key>", "subgoal_<key>")

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, H, W, 3] -> embeddings z [B, N, D]."""
        ...

    def encode_goal(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Goal images [B, H, W, 3] -> z [B, N, D] (the oracle maps them to the goal *states*)."""
        ...

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z [1 or B, N, D], state [1 or B, 7], actions [B, H, 7] -> predicted z [B, H, N, D]."""
        ...


class WorldModelDefaults:
    """Defaults of the protocol's extras for world models written in `planners` and in tests: not
    privileged, any action size and resolution, goal images encoded like any frame."""

    privileged = False
    action_dim: int | None = None
    resolution: int | None = None
    views: tuple[str, ...] = ("pixels",)

    def encode(self, frames) -> torch.Tensor:
        raise NotImplementedError

    def encode_goal(self, frames) -> torch.Tensor:
        return self.encode(frames)
