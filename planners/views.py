"""Several camera views as one world model: each view has its own world model (a checkpoint trained
on that camera), an observation is encoded view by view and the tokens are concatenated.

The L1 energy is a mean over tokens, so over concatenated views of equal token counts it is the mean
of the views' energies (their sum over the number of views, the same minimiser). A view's
`energy_weight` scales its share (`token_weights`, read by `planners.energy.latent_l1_energy`; each
token weighs its view's weight over the view's token count, so a view counts by its weight whatever
its token count); a view of weight 0 is read but never predicted: its tokens stay as observed through
a rollout, so it costs no predictor call and leaves the energy unchanged.

Why a view that is only read: a goal-state head (vjepa_ac/models/state_head.py) reads the goal's
state from a goal image, and some dimensions show best in another camera, or at another resolution of
the same camera. At 64 px the front camera shows the gripper fingers ~1 px wide, so it cannot tell a
gripper closed on an object on the table from an open one; the wrist camera shows them large. And the
front camera's 4x4 pooled tokens blur the end effector's position near the object, which a head on
its unpooled 8x8 tokens reads better (a goal-state *reader* checkpoint, `reader_only`, from
`scripts/train_state_head.py latent_pool=1`). `state_dims` of a later view replace those dimensions
of the first view's reading with its own head's; `observations` names the camera a view reads (by
default the view's own name), so two views may read one camera (README, "Reading the gripper from the
wrist view").
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from planners.protocol import WorldModel, WorldModelDefaults


class MultiViewWorldModel(WorldModelDefaults):
    """`models` maps view names to world models; `observations` maps a view to the observation key of
    the camera it reads (default: its name, e.g. "pixels", "wrist_pixels"). Frames are
    [B, V, H, W, 3] with one entry per view in that order (`views`: the observation keys, which may
    repeat); z is [B, N_1 + ... + N_V, D]. `energy_weights` (default 1 each) weight the views in the
    energy; `state_dims` maps a later view to the state dimensions its goal-state head reads instead
    of the first view's (`decode_state`)."""

    def __init__(self, models: Mapping[str, WorldModel], energy_weights: Mapping[str, float] | None = None,
                 state_dims: Mapping[str, Sequence[int]] | None = None, observations: Mapping[str, str] | None = None):
        if len(models) < 2:
            raise ValueError(f"a multi-view world model needs >= 2 views, got {list(models)}")
        self.models = dict(models)
        self.names = tuple(self.models)
        if any(m.privileged for m in self.models.values()):
            raise ValueError("the privileged oracle is not a camera view: use world_model=oracle on its own")
        self.action_dim = self._common("action_dim")
        self.resolution = self._common("resolution")
        unknown = sorted(set(energy_weights or {}) - set(self.names)) + sorted(set(state_dims or {}) - set(self.names)) \
            + sorted(set(observations or {}) - set(self.names))
        if unknown:
            raise ValueError(f"energy_weights / state_dims / observations name views {unknown} that are not among "
                             f"{list(self.names)}")
        self.views = tuple((observations or {}).get(name, name) for name in self.names)
        self.energy_weights = {name: float((energy_weights or {}).get(name, 1.0)) for name in self.names}
        if min(self.energy_weights.values()) < 0 or max(self.energy_weights.values()) <= 0:
            raise ValueError(f"energy weights must be >= 0 with one > 0, got {self.energy_weights}")
        readers = [name for name, m in self.models.items() if getattr(m, "reader_only", False) and self.energy_weights[name] > 0]
        if readers:
            raise ValueError(f"views {readers} are goal-state readers (their checkpoints cannot predict): "
                             "give them energy_weight 0")
        self.state_dims = {name: list(dims) for name, dims in (state_dims or {}).items()}
        if self.names[0] in self.state_dims:
            raise ValueError(f"the first view ({self.names[0]}) reads every state dimension; state_dims names "
                             "the ones a later view reads instead")
        self.tokens: list[int] | None = None  # tokens per view, known after the first encode

    def _common(self, name: str):
        values = {getattr(m, name) for m in self.models.values()}
        if len(values) > 1:
            raise ValueError(f"the views' world models disagree on {name}: "
                             f"{ {v: getattr(m, name) for v, m in self.models.items()} }")
        return values.pop()

    @property
    def token_weights(self) -> torch.Tensor | None:
        """Each token's energy weight [N_1 + ... + N_V]: its view's weight over the view's token count (None
        before the first encode, or when the views weigh alike and have as many tokens each)."""
        if self.tokens is None or (len(set(self.energy_weights.values())) == 1 and len(set(self.tokens)) == 1):
            return None
        per_view = [weight / count for weight, count in zip(self.energy_weights.values(), self.tokens)]
        return torch.tensor(per_view).repeat_interleave(torch.tensor(self.tokens))

    def _encode(self, frames, goal: bool) -> torch.Tensor:
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[1] != len(self.views):
            raise ValueError(f"expected frames [B, {len(self.views)} views {self.views}, H, W, 3], got {frames.shape}")
        zs = [(m.encode_goal if goal else m.encode)(frames[:, i]) for i, m in enumerate(self.models.values())]
        if len({z.shape[2] for z in zs}) > 1:
            raise ValueError(f"the views encode to different feature sizes {[tuple(z.shape[1:]) for z in zs]}")
        self.tokens = [z.shape[1] for z in zs]
        return torch.cat(zs, dim=1)

    def encode(self, frames) -> torch.Tensor:
        return self._encode(frames, goal=False)

    def encode_goal(self, frames) -> torch.Tensor:
        return self._encode(frames, goal=True)

    def _parts(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.tokens is None or z.shape[1] != sum(self.tokens):
            raise ValueError(f"z {tuple(z.shape)} is not {len(self.views)} views of encoded tokens")
        return z.split(self.tokens, dim=1)

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        batch, horizon = actions.shape[:2]
        preds = [m.rollout(part, state, actions) if self.energy_weights[name] > 0
                 else part[:, None].expand(batch, horizon, *part.shape[1:])  # read, not predicted
                 for part, (name, m) in zip(self._parts(z), self.models.items())]
        return torch.cat(preds, dim=2)

    def decode_state(self, z: torch.Tensor) -> torch.Tensor:
        """The goal-state heads' reading [B, S]: the first view's, with each later view's `state_dims`
        read by that view's head."""
        parts = dict(zip(self.names, self._parts(z)))
        state = self._head(self.names[0]).decode_state(parts[self.names[0]]).clone()
        for name, dims in self.state_dims.items():
            state[:, dims] = self._head(name).decode_state(parts[name])[:, dims].to(state.device)
        return state

    def _head(self, name: str) -> WorldModel:
        model = self.models[name]
        if getattr(model, "decode_state", None) is None:
            raise ValueError(f"the {name} view's world model has no goal-state head (decode_state)")
        return model
