"""Several camera views as one world model: each view has its own world model (a checkpoint trained
on that camera), an observation is encoded view by view and the tokens are concatenated.

The L1 energy is a mean over tokens, so over concatenated views it is the mean of the views' energies
(their sum over the number of views, the same minimiser): every view counts equally whatever its
token count is, as long as the views have equal token counts (checked at the first encode). A view's
`energy_weight` scales its share (`token_weights`, read by `planners.energy.latent_l1_energy`); a
view of weight 0 is read but never predicted: its tokens stay as observed through a rollout, so it
costs no predictor call and leaves the energy unchanged.

Why a view that is only read: a goal-state head (vjepa_ac/models/state_head.py) reads the goal's
state from a goal image, and some dimensions show best in another camera. At 64 px the front camera
shows the gripper fingers ~1 px wide, so it cannot tell a gripper closed on an object on the table
from an open one; the wrist camera shows them large. `state_dims` of a later view replace those
dimensions of the first view's reading with its own head's (docs/experiments.md, "What limits
grasping with subgoal images?").
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from planners.protocol import WorldModel, WorldModelDefaults


class MultiViewWorldModel(WorldModelDefaults):
    """`models` maps observation keys (e.g. "pixels", "wrist_pixels") to world models. Frames are
    [B, V, H, W, 3] with the views in that order; z is [B, V * N, D]. `energy_weights` (default 1
    each) weight the views in the energy; `state_dims` maps a later view to the state dimensions its
    goal-state head reads instead of the first view's (`decode_state`)."""

    def __init__(self, models: Mapping[str, WorldModel], energy_weights: Mapping[str, float] | None = None,
                 state_dims: Mapping[str, Sequence[int]] | None = None):
        if len(models) < 2:
            raise ValueError(f"a multi-view world model needs >= 2 views, got {list(models)}")
        self.models = dict(models)
        self.views = tuple(self.models)
        if any(m.privileged for m in self.models.values()):
            raise ValueError("the privileged oracle is not a camera view: use world_model=oracle on its own")
        self.action_dim = self._common("action_dim")
        self.resolution = self._common("resolution")
        self.energy_weights = {view: float((energy_weights or {}).get(view, 1.0)) for view in self.views}
        unknown = sorted(set(energy_weights or {}) - set(self.views)) + sorted(set(state_dims or {}) - set(self.views))
        if unknown:
            raise ValueError(f"energy_weights / state_dims name views {unknown} that are not among {list(self.views)}")
        if min(self.energy_weights.values()) < 0 or max(self.energy_weights.values()) <= 0:
            raise ValueError(f"energy weights must be >= 0 with one > 0, got {self.energy_weights}")
        self.state_dims = {view: list(dims) for view, dims in (state_dims or {}).items()}
        if self.views[0] in self.state_dims:
            raise ValueError(f"the first view ({self.views[0]}) reads every state dimension; state_dims names "
                             "the ones a later view reads instead")
        self.tokens: int | None = None  # per view, known after the first encode

    def _common(self, name: str):
        values = {getattr(m, name) for m in self.models.values()}
        if len(values) > 1:
            raise ValueError(f"the views' world models disagree on {name}: "
                             f"{ {v: getattr(m, name) for v, m in self.models.items()} }")
        return values.pop()

    @property
    def token_weights(self) -> torch.Tensor | None:
        """Each token's energy weight [V * N] (None before the first encode or when all views weigh alike)."""
        if self.tokens is None or len(set(self.energy_weights.values())) == 1:
            return None
        return torch.tensor(list(self.energy_weights.values())).repeat_interleave(self.tokens)

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

    def _parts(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.tokens is None or z.shape[1] != self.tokens * len(self.views):
            raise ValueError(f"z {tuple(z.shape)} is not {len(self.views)} views of encoded tokens")
        return z.split(self.tokens, dim=1)

    @property
    def predicts_state(self) -> bool:
        """The first view's world model predicts the states (`rollout_with_states`)."""
        return getattr(next(iter(self.models.values())), "predicts_state", False)

    def _view_rollout(self, view: str, model: WorldModel, z: torch.Tensor, state: torch.Tensor,
                      actions: torch.Tensor) -> torch.Tensor:
        """One view's predicted latents [B, H, N, D]; a view without energy weight is read, not predicted."""
        if self.energy_weights[view] > 0:
            return model.rollout(z, state, actions)
        return z[:, None].expand(*actions.shape[:2], *z.shape[1:])

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._view_rollout(view, m, part, state, actions)
                          for part, (view, m) in zip(self._parts(z), self.models.items())], dim=2)

    def rollout_with_states(self, z: torch.Tensor, state: torch.Tensor,
                            actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every view's latents (`rollout`; the first view's predicted) and the first view's states [B, H, S]."""
        first, *parts = self._parts(z)
        (_, model), *others = self.models.items()
        z_first, states = model.rollout_with_states(first, state, actions)
        rest = [self._view_rollout(v, m, part, state, actions) for part, (v, m) in zip(parts, others)]
        return torch.cat([z_first, *rest], dim=2), states

    def decode_state(self, z: torch.Tensor) -> torch.Tensor:
        """The goal-state heads' reading [B, S]: the first view's, with each later view's `state_dims`
        read by that view's head."""
        parts = dict(zip(self.views, self._parts(z)))
        state = self._head(self.views[0]).decode_state(parts[self.views[0]]).clone()
        for view, dims in self.state_dims.items():
            state[:, dims] = self._head(view).decode_state(parts[view])[:, dims].to(state.device)
        return state

    @property
    def propose_subgoal(self):
        """The first view's subgoal prior (None without one), over every view's current tokens and the
        first view's goal: the single goal image; the other views' goal images are never read."""
        first = self.models[self.views[0]]
        prior = getattr(first, "subgoal_prior", None)
        if prior is None:
            return None
        views = prior.cfg.views
        if views != len(self.views):
            raise ValueError(f"the {self.views[0]} view's subgoal prior reads {views} view(s), not the "
                             f"{len(self.views)} of {list(self.views)}")
        # the goal's first view by the prior's own token count, not `_parts`: a high-level model proposes
        # from latents the low-level model encoded, so its own `tokens` is never set
        return lambda z_now, state_now, z_goal: first.propose_subgoal(z_now, state_now, z_goal[:, :prior.cfg.num_tokens])

    def _head(self, view: str) -> WorldModel:
        model = self.models[view]
        if getattr(model, "decode_state", None) is None:
            raise ValueError(f"the {view} view's world model has no goal-state head (decode_state)")
        return model
