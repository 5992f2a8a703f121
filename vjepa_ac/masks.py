"""Multi-block 3D masks for V-JEPA, sampled per batch (in the training process, see pretrain.py).

Each mask set (V-JEPA: short-range = 8 blocks at spatial scale 0.15, long-range = 2 blocks at 0.7)
places `num_blocks` rectangles of one size (area `spatial_scale` of the frame, aspect ratio drawn
from `aspect_ratio`) at random positions; each rectangle is a tube over `temporal_scale` of the
clip's time steps (1.0: all of them). Targets are the union of the tubes, the context its
complement. Sizes are drawn once per batch and positions per clip; context and target index lists
are then cut to the batch's shortest (keeping a random subset, in position order) so they stack.

Randomness comes from the generator passed in; pretraining seeds it with (seed, rank, epoch, batch
index), so resumed runs and re-runs draw the same masks whatever the number of loader workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class MaskSet:
    num_blocks: int
    spatial_scale: float
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    temporal_scale: float = 1.0

    def validate(self, name: str) -> None:
        """Raise ValueError naming the offending config key."""
        if self.num_blocks < 1:
            raise ValueError(f"{name}.num_blocks must be >= 1, got {self.num_blocks}")
        if not 0.0 < self.spatial_scale < 1.0:
            raise ValueError(f"{name}.spatial_scale must be in (0, 1), got {self.spatial_scale}")
        lo, hi = self.aspect_ratio
        if not 0.0 < lo <= hi:
            raise ValueError(f"{name}.aspect_ratio must be 0 < min <= max, got {list(self.aspect_ratio)}")
        if not 0.0 < self.temporal_scale <= 1.0:
            raise ValueError(f"{name}.temporal_scale must be in (0, 1], got {self.temporal_scale}")


def block_shape(s: MaskSet, grid_h: int, grid_w: int, rng: np.random.Generator) -> tuple[int, int]:
    """(height, width) in patches of one block: area spatial_scale * H * W, random aspect ratio, and
    strictly smaller than the frame so some context always remains."""
    area = s.spatial_scale * grid_h * grid_w
    ratio = math.exp(rng.uniform(math.log(s.aspect_ratio[0]), math.log(s.aspect_ratio[1])))
    h = min(max(1, round(math.sqrt(area * ratio))), max(1, grid_h - 1))
    w = min(max(1, round(math.sqrt(area / ratio))), max(1, grid_w - 1))
    return h, w


def sample_target_mask(s: MaskSet, grid: tuple[int, int, int], shape: tuple[int, int],
                       rng: np.random.Generator) -> np.ndarray:
    """bool [T', H', W']: True where a block tube covers the token."""
    gt, gh, gw = grid
    h, w = shape
    depth = max(1, round(s.temporal_scale * gt))
    mask = np.zeros(grid, dtype=bool)
    for _ in range(s.num_blocks):
        t0 = rng.integers(0, gt - depth + 1)
        top, left = rng.integers(0, gh - h + 1), rng.integers(0, gw - w + 1)
        mask[t0:t0 + depth, top:top + h, left:left + w] = True
    return mask


def _random_subset_sorted(ids: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(ids, size=k, replace=False)) if len(ids) > k else ids


def sample_masks(batch_size: int, grid: tuple[int, int, int], mask_sets: list[MaskSet],
                 rng: np.random.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each mask set: (context_ids [B, Nc], target_ids [B, Nt]), int64 token indices in (t, h, w) order."""
    out = []
    for s in mask_sets:
        shape = block_shape(s, grid[1], grid[2], rng)
        ctx, tgt = [], []
        for _ in range(batch_size):
            for _attempt in range(20):  # tubes over all time can cover the whole clip: redraw then
                m = sample_target_mask(s, grid, shape, rng).reshape(-1)
                if not m.all():
                    break
            else:
                raise RuntimeError(f"mask set {s} leaves no context on grid {grid}: lower spatial_scale or num_blocks")
            ctx.append(np.flatnonzero(~m))
            tgt.append(np.flatnonzero(m))
        nc, nt = min(map(len, ctx)), min(map(len, tgt))
        out.append((torch.from_numpy(np.stack([_random_subset_sorted(c, nc, rng) for c in ctx])),
                    torch.from_numpy(np.stack([_random_subset_sorted(t, nt, rng) for t in tgt]))))
    return out
