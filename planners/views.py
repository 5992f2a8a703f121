"""Several camera views as one world model: each view has its own world model (a checkpoint trained
on that camera), an observation is encoded view by view and the tokens are concatenated.

The L1 energy is a mean over tokens, so over concatenated views it is the mean of the views' energies
(their sum over the number of views, the same minimiser): every view counts equally whatever its
token count is, as long as the views have equal token counts (checked at the first encode).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from planners.protocol import WorldModel, WorldModelDefaults


class MultiViewWorldModel(WorldModelDefaults):
    """`models` maps observation keys (e.g. "pixels", "wrist_pixels") to world models. Frames are
    [B, V, H, W, 3] with the views in that order; z is [B, V * N, D]."""

    def __init__(self, models: Mapping[str, WorldModel]):
        if len(models) < 2:
            raise ValueError(f"a multi-view world model needs >= 2 views, got {list(models)}")
        self.models = dict(models)
        self.views = tuple(self.models)
        if any(m.privileged for m in self.models.values()):
            raise ValueError("the privileged oracle is not a camera view: use world_model=oracle on its own")
        self.action_dim = self._common("action_dim")
        self.resolution = self._common("resolution")
        self.tokens: int | None = None  # per view, known after the first encode

    def _common(self, name: str):
        values = {getattr(m, name) for m in self.models.values()}
        if len(values) > 1:
            raise ValueError(f"the views' world models disagree on {name}: "
                             f"{ {v: getattr(m, name) for v, m in self.models.items()} }")
        return values.pop()

    def _encode(self, frames, goal: bool) -> torch.Tensor:
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[1] != len(self.views):
            raise ValueError(f"expected frames [B, {len(self.views)} views {self.views}, H, W, 3], got {frames.shape}")
        zs = [(m.encode_goal if goal else m.encode)(frames[:, i]) for i, m in enumerate(self.models.values())]
        if len({z.shape[1:] for z in zs}) > 1:
            raise ValueError(f"the views encode to different token shapes {[tuple(z.shape[1:]) for z in zs]}")
        self.tokens = zs[0].shape[1]
        return torch.cat(zs, dim=1)

    def encode(self, frames) -> torch.Tensor:
        return self._encode(frames, goal=False)

    def encode_goal(self, frames) -> torch.Tensor:
        return self._encode(frames, goal=True)

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if self.tokens is None or z.shape[1] != self.tokens * len(self.views):
            raise ValueError(f"z {tuple(z.shape)} is not {len(self.views)} views of encoded tokens")
        parts = z.split(self.tokens, dim=1)
        return torch.cat([m.rollout(p, state, actions) for p, m in zip(parts, self.models.values())], dim=2)
