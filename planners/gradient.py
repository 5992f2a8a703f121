"""Gradient-based planning: Adam on the action sequence, through a differentiable world model."""
from __future__ import annotations

import torch

from planners.base import Planner
from planners.protocol import WorldModel


class GradientPlanner(Planner):
    """Optimise `num_restarts` action sequences in parallel (one batched rollout per step) with Adam
    for `steps` steps and return the lowest-energy sequence seen. Actions are parametrised as
    mid + half_range * tanh(u), so every iterate lies within the bounds. Restart 0 starts from the
    warm start, the others from it plus Gaussian noise of `init_std` in u-space. The gripper is
    optimised like any other dimension (freeze it with `frozen_dims` if it should not move).
    """

    def __init__(self, action_low, action_high, num_restarts: int = 4, steps: int = 20, lr: float = 0.3, init_std: float = 0.5, **kwargs):
        super().__init__(action_low, action_high, **kwargs)
        if num_restarts < 1 or steps < 1 or lr <= 0:
            raise ValueError(f"need num_restarts >= 1, steps >= 1, lr > 0, got {num_restarts}, {steps}, {lr}")
        self.num_restarts = num_restarts
        self.steps = steps
        self.lr = lr
        self.init_std = init_std

    def _optimize(self, world_model: WorldModel, z_now, state_now, z_goal) -> torch.Tensor:
        span = self.half_range.clamp(min=1e-8)
        start = ((self._warm_mean() - self.mid) / span).clamp(-0.999, 0.999).atanh()
        noise = self.init_std * torch.randn((self.num_restarts, *start.shape), generator=self.generator)
        noise[0] = 0
        u = (start + noise).requires_grad_(True)
        optimizer = torch.optim.Adam([u], lr=self.lr)
        best_energy, best_actions = float("inf"), None
        for step in range(self.steps + 1):
            actions = self._clip(self.mid + span * torch.tanh(u))
            with torch.enable_grad():
                z_pred, states = self._predict(world_model, z_now, state_now, actions)
                energies = self._score(z_pred, z_goal, actions, state_now, states)
            i = int(energies.detach().argmin())
            if float(energies[i].detach()) < best_energy:
                best_energy, best_actions = float(energies[i].detach()), actions[i].detach().clone()
            if step == self.steps:
                break
            if not energies.requires_grad:
                raise TypeError(
                    f"GradientPlanner needs a differentiable world model, but {type(world_model).__name__}.rollout "
                    "returned predictions without gradients (the privileged simulator oracle is not differentiable; "
                    "a learned model must not run its rollout under torch.no_grad)"
                )
            optimizer.zero_grad()
            energies[torch.isfinite(energies)].sum().backward()
            optimizer.step()
        return best_actions
