"""Baselines that need no world model, behind the planner interface, so that the benchmark runs
them through the same MPC loop (same seeds, step budget, success bookkeeping and timing) as the
planners: uniformly random actions, and any policy callable (e.g. the PRIVILEGED scripted expert).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from planners.base import Planner
from planners.protocol import WorldModel, WorldModelDefaults
from planners.sampling import gripper_commands, uniform_actions
from vjepa_ac.state_action import GRIPPER_DIM


class NullWorldModel(WorldModelDefaults):
    """A world model that knows nothing: one zero token per frame. For policies, which ignore it.
    `privileged` says whether the policy that runs beside it reads the simulator."""

    def __init__(self, privileged: bool = False):
        self.privileged = privileged

    def encode(self, frames) -> torch.Tensor:
        return torch.zeros(len(frames), 1, 1)

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.zeros(actions.shape[0], actions.shape[1], 1, 1)


class RandomActions(Planner):
    """Uniformly random actions within the bounds (frozen dims held, gripper drawn from
    {open, hold, close} as the sampling planners do); never calls the world model."""

    def __init__(self, action_low, action_high, gripper_dim: int = GRIPPER_DIM, **kwargs):
        super().__init__(action_low, action_high, horizon=1, **kwargs)
        self.gripper_dim = gripper_dim
        self.gripper_values = gripper_commands(self.low, self.high, self.rest, gripper_dim)

    def _optimize(self, world_model: WorldModel, z_now, state_now, z_goal) -> torch.Tensor:
        actions = uniform_actions(self.low, self.high, (1, 1), self.generator, self.gripper_dim, self.gripper_values)
        return self._clip(actions)[0]


class PolicyPlanner(Planner):
    """Wraps a policy: `make_policy()` is called at every `reset` (a new episode) and must return a
    callable `act() -> action [A]`; each plan is that single action, clipped to the bounds."""

    def __init__(self, action_low, action_high, make_policy: Callable[[], Callable[[], np.ndarray]], **kwargs):
        super().__init__(action_low, action_high, horizon=1, **{"frozen_dims": (), **kwargs})
        self.make_policy = make_policy
        self.act: Callable[[], np.ndarray] | None = None

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.act = self.make_policy()

    def _optimize(self, world_model: WorldModel, z_now, state_now, z_goal) -> torch.Tensor:
        if self.act is None:
            raise RuntimeError("PolicyPlanner.plan before reset(): no policy for this episode")
        action = torch.as_tensor(np.asarray(self.act(), dtype=np.float32))
        return self._clip(action[None])
