"""What every planner shares: action bounds, frozen dimensions, warm start, seeding, scoring."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from planners.energy import (ENERGY_REDUCTIONS, LATENT_ENERGIES, goal_energy, latent_l1_energy, mask_non_finite,
                             token_weights)
from planners.protocol import WorldModel
from vjepa_ac.state_action import GRIPPER_DIM, POSITION_DIMS, ROTATION_DIMS, STATE_HIGH, STATE_LOW


def integrate(state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """States after each action: `state` [1, S] + cumulative `actions` [B, H, S] -> [B, H, S] (the world
    models' integration), clamped to the state bounds (so the gripper closure stays in [0, 1])."""
    return (state[:, None] + actions.cumsum(1)).clamp(torch.as_tensor(STATE_LOW), torch.as_tensor(STATE_HIGH))


def stop_at_goal_closure(states: torch.Tensor, state_now: torch.Tensor, goal: torch.Tensor,
                         grasp_radius: float | None = None) -> torch.Tensor:
    """Integrated states [B, H, S] with a gripper closure that closed past the goal's [1, S] (from
    `state_now`'s [1, S], below it) set to the goal's. Why: an object between the fingers stops them,
    so a gripper closed on an object measures ~0.4, not the 1.0 that integrating "close" gives, and
    "close" must not score worse than "hold" toward a goal that shows the object held. Opening has no
    such stop, so a closure opened past the goal's still counts.

    With `grasp_radius` (m), the fingers stop only if they cross the goal's closure within that
    distance of the goal's position (where the goal image shows them closed on the object): a close
    anywhere else closes empty, to the integrated value, for the rest of the plan. Without it a plan
    scores "close now, arrive next" like "arrive, then close", and a summed energy prefers closing
    first (the larger error falls first), which pushes the object away."""
    now, target = state_now[:, GRIPPER_DIM, None], goal[:, GRIPPER_DIM, None]  # [1, 1]
    closure = states[..., GRIPPER_DIM]  # [B, H]
    stopped = (target > now) & (closure > target)
    if grasp_radius is not None:
        first = stopped & (stopped.cumsum(1) == 1)  # the step that crosses the goal's closure
        near = (states[..., list(POSITION_DIMS)] - goal[:, None, list(POSITION_DIMS)]).norm(dim=-1) <= grasp_radius
        stopped = stopped & (first & near).any(1, keepdim=True)
    states = states.clone()
    states[..., GRIPPER_DIM] = torch.where(stopped, target, closure)
    return states


def hold_small_gripper_changes(goal: torch.Tensor, state_now: torch.Tensor, deadband: float) -> torch.Tensor:
    """`goal` [1, S] with its gripper closure set to `state_now`'s when they differ by less than
    `deadband`: a goal-state head reads the closure to ~0.1, so a smaller difference is noise, and
    acting on it would close an open gripper far from any object (or open one that holds it)."""
    goal = goal.clone()
    if abs(float(goal[0, GRIPPER_DIM] - state_now[0, GRIPPER_DIM])) < deadband:
        goal[0, GRIPPER_DIM] = state_now[0, GRIPPER_DIM]
    return goal


def learned_distance(world_model: WorldModel):
    """The world model's learned latent distance (`distance(z [B, N, D], z_goal [1, N, D]) -> [B]`), checked."""
    if getattr(world_model, "latent_distance", None) is None:
        raise ValueError(f"latent_energy 'learned' needs a world model with a learned latent distance; "
                         f"{type(world_model).__name__} has none (train one with scripts/train_latent_distance.py)")
    return world_model.distance


class Planner:
    """Base class of all planners:
    `plan(world_model, z_now [1, N, D], state_now [1, S], z_goal [1, N, D]) -> actions [H, A]`.

    Actions stay inside [action_low, action_high] (the env's per-step bounds); `frozen_dims` are held
    at zero (or the nearest bound); the default, the rotation dims of `vjepa_ac.state_action`, keeps
    the orientation fixed as the reference does. `action_cost` adds
    that weight times the mean |action| (as a fraction of its bound, over the free motion dims) of
    each step to the energy: with an imperfect model, candidates near the goal differ by less than
    the prediction error, and the cost makes "stay" win when no move is predicted to help.
    `latent_weight` scales the latent energy itself (0: the state term alone steers, as when a
    two-level planner's subgoal prior gives the goal as a state). `latent_energy` is that energy:
    "l1", the mean absolute difference between predicted and goal latents (V-JEPA 2-AC's), or
    "learned", the world model's learned latent distance of the predicted latents to the goal's
    (`WorldModel.distance`, control steps; vjepa_ac/models/latent_distance.py).
    `state_weight` adds that weight times the mean |state - goal state| over `state_dims` (metres for
    positions) of the state integrated along the plan (`state + cumulative actions`, as the world
    model integrates it; "final" or "sum" like the latent energy), where the goal state is read from
    the goal latent by the world model's goal-state head (`decode_state`; see
    vjepa_ac/models/state_head.py) relative to the present: the measured state plus the head's
    difference between the goal and the current latents, so the head's own bias cancels as the frame
    approaches the goal image (its absolute reading of the goal was tried and lost: docs/experiments.md). On the
    gripper closure the term is physical rather than literal: a closure change the head reads smaller
    than `gripper_deadband` counts as "hold" (`hold_small_gripper_changes`), and closing past the goal's
    closure counts as reaching it (`stop_at_goal_closure`: an object between the fingers stops them), and
    with `grasp_radius` only when the close happens that near the goal's position. The planner is
    stateful across MPC steps: after `shift(m)` (m actions executed) the next plan warm-starts from
    the rest of the previous solution. `reset(seed)` starts a new episode. After each `plan`,
    `stats` holds the predicted energy of the best candidate seen, the number of rollout calls and
    candidates, and how many non-finite candidates were skipped.
    """

    def __init__(
        self,
        action_low: Sequence[float] | np.ndarray,
        action_high: Sequence[float] | np.ndarray,
        horizon: int = 2,
        frozen_dims: Sequence[int] = ROTATION_DIMS,
        energy: str = "final",
        latent_energy: str = "l1",
        action_cost: float = 0.0,
        latent_weight: float = 1.0,
        state_weight: float = 0.0,
        state_dims: Sequence[int] = POSITION_DIMS,
        gripper_deadband: float = 0.0,
        grasp_radius: float | None = None,
        goal_state_memory: float = 0.0,
        seed: int = 0,
    ):
        low = torch.as_tensor(np.asarray(action_low, dtype=np.float32))
        high = torch.as_tensor(np.asarray(action_high, dtype=np.float32))
        if low.dim() != 1 or low.shape != high.shape:
            raise ValueError(f"action bounds must be 1-D of equal length, got {tuple(low.shape)} and {tuple(high.shape)}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()) or (low > high).any():
            raise ValueError(f"action bounds must be finite with low <= high, got low={low.tolist()} high={high.tolist()}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if min(action_cost, latent_weight, state_weight, gripper_deadband, grasp_radius or 0) < 0:
            raise ValueError(f"action_cost, latent_weight, state_weight, gripper_deadband and grasp_radius must be >= 0, "
                             f"got {action_cost}, {latent_weight}, {state_weight}, {gripper_deadband}, {grasp_radius}")
        if not 0 <= goal_state_memory < 1:
            raise ValueError(f"goal_state_memory must be in [0, 1), got {goal_state_memory}")
        if energy not in ENERGY_REDUCTIONS:
            raise ValueError(f"energy must be one of {ENERGY_REDUCTIONS}, got {energy!r}")
        if latent_energy not in LATENT_ENERGIES:
            raise ValueError(f"latent_energy must be one of {LATENT_ENERGIES}, got {latent_energy!r}")
        bad = [d for d in (*frozen_dims, *state_dims) if not 0 <= d < low.numel()]
        if bad:
            raise ValueError(f"frozen_dims / state_dims {bad} out of range for a {low.numel()}-D action")
        self.low, self.high = low, high
        self.horizon = horizon
        self.energy, self.latent_energy = energy, latent_energy
        self.distance = None  # the world model's learned latent distance, set per plan (latent_energy "learned")
        self.frozen = torch.zeros(low.numel(), dtype=torch.bool)
        self.frozen[list(frozen_dims)] = True
        self.rest = torch.zeros_like(low).clamp(low, high)  # the "do nothing" action, frozen dims' value
        self.action_cost = action_cost
        self.latent_weight = latent_weight
        self.cost_dims = ~self.frozen  # dims the action cost counts (sampling planners drop the gripper)
        self.state_weight, self.state_dims = state_weight, list(state_dims)
        self.gripper_deadband, self.grasp_radius = gripper_deadband, grasp_radius
        self.goal_state: torch.Tensor | None = None  # [1, S], read once per plan when state_weight > 0 (deadband applied)
        self.fixed_goal_state: torch.Tensor | None = None  # [1, S] given by `fix_goal_state` instead
        self.goal_state_memory = goal_state_memory
        self.remembered: tuple[torch.Tensor, torch.Tensor] | None = None  # (goal latent, its goal-state estimate)
        self.token_weights: torch.Tensor | None = None  # the world model's per-token energy weights, set per plan
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.previous: torch.Tensor | None = None
        self.stats: dict[str, float] = {}

    @property
    def action_dim(self) -> int:
        return self.low.numel()

    @property
    def mid(self) -> torch.Tensor:
        return (self.low + self.high) / 2

    @property
    def half_range(self) -> torch.Tensor:
        return (self.high - self.low) / 2

    def reset(self, seed: int | None = None) -> None:
        """Forget the warm start and reseed (with `seed`, or the planner's own seed)."""
        if seed is not None:
            self.seed = seed
        self.generator.manual_seed(self.seed)
        self.previous = None
        self.goal_state = None
        self.fixed_goal_state = None
        self.remembered = None

    def fix_goal_state(self, state: torch.Tensor | None) -> None:
        """Make `state` [1, S] the state term's goal in the next plans instead of the one read from the goal
        latent (None: read it again). A two-level planner passes the state its high-level plan reaches."""
        self.fixed_goal_state = None if state is None else state.detach().float().cpu()

    def gripper_reached(self, state_now: torch.Tensor, tolerance: float) -> bool:
        """Whether the measured gripper closure in `state_now` [1, S] has done what the last plan's goal
        state shows: closed to at least the goal's closure minus `tolerance` when the goal shows it closed
        (closing past counts: an object stops the fingers, an empty close overshoots), or open to within
        `tolerance` when it shows it open. True when the planner reads no goal state. The subgoal switch
        asks this before leaving a subgoal (`SubgoalSwitch.gripper_tolerance`)."""
        if self.goal_state is None:
            return True
        goal, now = float(self.goal_state[0, GRIPPER_DIM]), float(state_now[0, GRIPPER_DIM])
        if goal >= tolerance:
            return now >= goal - tolerance
        return now <= goal + tolerance

    def episode_log(self) -> dict:
        """What the planner noted over the episode, for the episode's summary (flat planners: nothing)."""
        return {}

    def shift(self, steps: int) -> None:
        """`steps` actions of the last plan were executed: keep the rest as the next warm start."""
        if self.previous is None:
            return
        rest = self.previous[steps:]
        pad = self.rest.expand(self.horizon - rest.shape[0], -1)
        self.previous = torch.cat([rest, pad]) if rest.shape[0] else None

    def plan(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """Return the action sequence [H, A] that minimises the energy to z_goal."""
        self._begin(world_model, z_now, state_now, z_goal)
        actions = self._optimize(world_model, z_now.detach(), state_now.detach().float(), z_goal.detach())
        self.previous = actions.detach().clone()
        return actions.detach().clone()

    def score(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor,
              actions: torch.Tensor) -> torch.Tensor:
        """The energies [B] that `plan` gives the candidates `actions` [B, H, A] (offline evaluation)."""
        self._begin(world_model, z_now, state_now, z_goal)
        return self._evaluate(world_model, z_now.detach(), state_now.detach().float(), z_goal.detach(), actions)

    def _begin(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor) -> None:
        """Check the inputs, reset `stats` and read the goal state for this plan."""
        self._check_inputs(world_model, z_now, state_now, z_goal)
        self.stats = {"rollout_calls": 0, "candidates": 0, "skipped_nonfinite": 0, "energy": float("inf")}
        self.token_weights = token_weights(world_model)
        self.distance = learned_distance(world_model) if self.latent_energy == "learned" else None
        if self.state_weight > 0:
            goal = (self.fixed_goal_state if self.fixed_goal_state is not None else
                    self._goal_estimate(world_model, z_now.detach(), state_now.detach(), z_goal.detach()))
            self.goal_state = hold_small_gripper_changes(goal, state_now.detach().float().cpu(), self.gripper_deadband)

    def _optimize(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_inputs(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor) -> None:
        model_dim = world_model.action_dim
        if model_dim is not None and model_dim != self.action_dim:
            raise ValueError(
                f"the world model takes {model_dim}-D actions but the planner's action bounds are "
                f"{self.action_dim}-D (checkpoint trained for another robot/env?)"
            )
        if z_now.dim() != 3 or z_now.shape[0] != 1:
            raise ValueError(f"z_now must be [1, N, D], got {tuple(z_now.shape)}")
        if z_goal.shape != z_now.shape:
            raise ValueError(
                f"z_goal {tuple(z_goal.shape)} must have the shape of z_now {tuple(z_now.shape)} "
                "(goal image of another size than the camera frames?)"
            )
        if state_now.dim() != 2 or state_now.shape[0] != 1:
            raise ValueError(f"state_now must be [1, S], got {tuple(state_now.shape)}")

    def _warm_mean(self) -> torch.Tensor:
        """The previous solution (shifted) or the rest action, [H, A]."""
        if self.previous is not None:
            return self.previous.clone()
        return self.rest.expand(self.horizon, -1).clone()

    def _goal_estimate(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor,
                       z_goal: torch.Tensor) -> torch.Tensor:
        """The goal state [1, S]: this plan's reading, or with `goal_state_memory` m > 0 and the same goal
        latent as the last plan, m x the last estimate + (1 - m) x this reading. Why: each reading errs by
        ~1-2 cm as the frame changes, and a planner chasing a reading that moves every step dithers next
        to the object and pushes it; one goal image has one state."""
        estimate = self._read_goal_state(world_model, z_now, state_now, z_goal)
        if self.goal_state_memory > 0 and self.remembered is not None and torch.equal(self.remembered[0], z_goal):
            estimate = self.goal_state_memory * self.remembered[1] + (1 - self.goal_state_memory) * estimate
        self.remembered = (z_goal.clone(), estimate)
        return estimate

    def _read_goal_state(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor,
                         z_goal: torch.Tensor) -> torch.Tensor:
        """The goal's state [1, S]: the measured state plus the goal-state head's difference between the
        goal and the current latents (so the head's bias cancels near the goal)."""
        decode = getattr(world_model, "decode_state", None)
        if decode is None:
            raise ValueError(f"state_weight > 0 needs a world model with a goal-state head (decode_state); "
                             f"{type(world_model).__name__} has none")
        difference = decode(z_goal).detach().float().cpu() - decode(z_now).detach().float().cpu()
        return state_now.float().cpu() + difference

    def _clip(self, actions: torch.Tensor) -> torch.Tensor:
        """Clip to the bounds and put the frozen dimensions at their fixed value."""
        actions = torch.maximum(torch.minimum(actions, self.high), self.low)
        return torch.where(self.frozen, self.rest, actions)

    def _score(self, z_pred: torch.Tensor, z_goal: torch.Tensor, actions: torch.Tensor,
               state_now: torch.Tensor, states: torch.Tensor | None = None) -> torch.Tensor:
        """Energies [B] of predictions z_pred [B, H, N, D] of `actions` [B, H, A] from `state_now` [1, S]
        (and the world model's predicted states [B, H, S], if it predicts them; else the state term
        integrates); non-finite ones become +inf (skipped). `stats["energy"]` is the latent part alone."""
        if z_pred.shape[:2] != actions.shape[:2]:
            raise ValueError(
                f"world model rollout returned {tuple(z_pred.shape)}, expected [B, H, N, D] with "
                f"B, H = {tuple(actions.shape[:2])}"
            )
        energies = self._latent_energy(z_pred.float(), z_goal.to(z_pred.device).float())
        energies, skipped = mask_non_finite(energies.to(actions.device))  # candidates live on the CPU
        self.stats["rollout_calls"] += 1
        self.stats["candidates"] += actions.shape[0]
        self.stats["skipped_nonfinite"] += skipped
        self.stats["energy"] = min(self.stats["energy"], float(energies.detach().min()))
        energies = self.latent_weight * energies
        if self.action_cost > 0 and self.cost_dims.any():
            motion = ((actions - self.rest).abs() / self.half_range.clamp(min=1e-8))[..., self.cost_dims]
            energies = energies + self.action_cost * motion.mean(-1).sum(-1)
        if self.state_weight > 0:
            energies = energies + self.state_weight * self._state_energy(state_now, actions, states)
        return energies

    def _latent_energy(self, z_pred: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """`latent_energy` of predictions [B, H, N, D] to the goal [1, N, D], per step reduced by `energy`: [B]."""
        if self.distance is None:
            return latent_l1_energy(z_pred, z_goal, self.energy, self.token_weights)
        steps = z_pred[:, -1:] if self.energy == "final" else z_pred
        return self.distance(steps.flatten(0, 1), z_goal).view(steps.shape[:2]).sum(1)

    def goal_energy(self, world_model: WorldModel, z_now: torch.Tensor, z_goal: torch.Tensor) -> float:
        """This planner's latent energy of the present latents [1, N, D] to a goal [1, N, D] (what the
        subgoal switch reads)."""
        if self.latent_energy == "learned":
            return float(learned_distance(world_model)(z_now, z_goal)[0])
        return goal_energy(z_now, z_goal, token_weights(world_model))

    def _state_energy(self, state_now: torch.Tensor, actions: torch.Tensor,
                      states: torch.Tensor | None = None) -> torch.Tensor:
        """Mean |state - goal state| over `state_dims`, per step reduced like the latent energy: [B]. The
        states are the world model's predictions [B, H, S] when given, else integrated with the gripper
        rule `stop_at_goal_closure` standing in for what a predictor of states would know."""
        if states is None:
            states = stop_at_goal_closure(integrate(state_now, actions), state_now, self.goal_state,
                                          self.grasp_radius)  # [B, H, S]
        states = states.to(actions.device)
        per_step = (states - self.goal_state[:, None])[..., self.state_dims].abs().mean(-1)  # [B, H]
        return per_step[:, -1] if self.energy == "final" else per_step.sum(1)

    def _evaluate(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """All candidates [B, H, A] through one rollout call -> energies [B] (no gradients). With
        `latent_weight` 0 nothing is predicted: the present latents stand in for every step and the
        state is integrated. A world model that predicts states gives the state term its states."""
        if self.latent_weight == 0:
            z_pred, states = z_now[:, None].expand(actions.shape[0], actions.shape[1], *z_now.shape[1:]), None
        else:
            with torch.no_grad():
                z_pred, states = self._predict(world_model, z_now, state_now, actions)
        return self._score(z_pred, z_goal, actions, state_now, states)

    def _predict(self, world_model: WorldModel, z_now: torch.Tensor, state_now: torch.Tensor,
                 actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The world model's latents [B, H, N, D] for `actions` [B, H, A] and, when the state term needs
        them and it predicts them, its states [B, H, S] (None: the state term integrates)."""
        if self.state_weight > 0 and getattr(world_model, "predicts_state", False):
            return world_model.rollout_with_states(z_now, state_now, actions)
        return world_model.rollout(z_now, state_now, actions), None
