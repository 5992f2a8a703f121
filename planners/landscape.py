"""Energy landscapes: the energy of one-step actions on a grid over two action dimensions."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from planners.energy import latent_l1_energy
from planners.protocol import WorldModel


def energy_grid(
    world_model: WorldModel,
    z_now: torch.Tensor,
    state_now: torch.Tensor,
    z_goal: torch.Tensor,
    dims: Sequence[int],
    low: Sequence[float],
    high: Sequence[float],
    grid_size: int = 21,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energies [grid_size, grid_size] of the one-step actions that set action dims (i, j) to a
    grid over [low, high] and every other dimension to zero; rows index dims[0], columns dims[1].
    Returns (energies, values of dims[0], values of dims[1])."""
    if grid_size < 2:
        raise ValueError(f"grid_size must be >= 2, got {grid_size}")
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"dims must be two different action dimensions, got {list(dims)}")
    action_dim = len(low)
    if not all(0 <= d < action_dim for d in dims):
        raise ValueError(f"dims {list(dims)} out of range for a {action_dim}-D action")
    xs = np.linspace(low[dims[0]], high[dims[0]], grid_size, dtype=np.float32)
    ys = np.linspace(low[dims[1]], high[dims[1]], grid_size, dtype=np.float32)
    actions = torch.zeros((grid_size * grid_size, 1, action_dim))
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    actions[:, 0, dims[0]] = torch.from_numpy(gx.ravel())
    actions[:, 0, dims[1]] = torch.from_numpy(gy.ravel())
    energies = []
    with torch.no_grad():
        for chunk in actions.split(batch_size):
            energies.append(latent_l1_energy(world_model.rollout(z_now, state_now, chunk), z_goal))
    return torch.cat(energies).reshape(grid_size, grid_size).numpy(), xs, ys
