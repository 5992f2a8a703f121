"""Two-level planning from a single goal image (HWM-style hierarchical MPC).

The high level searches over a few *macro-actions* (each the summed action of `macro_steps` control
steps: end-effector displacement plus gripper command) with a high-level world model that predicts
one macro-action ahead in the same latent space as the low-level model, toward the goal latent. The
latent it predicts after the first macro-action becomes the low level's goal: the low-level planner
replans every control step toward that subgoal, as it would toward a subgoal image. The high level
replans every `macro_steps` control steps, or earlier once the planner's own energy to the subgoal
has fallen below `reached_fraction` of its value when the subgoal was set.

Without a high-level search (`high=None`), the high level is a learned *subgoal prior* instead
(`vjepa_ac.models.subgoal_prior`, a world model's `propose_subgoal`): from the current frame, the
state and the goal image it proposes the state to reach next, the next keyframe of the robot logs'
demonstrations (where they closed on the object, released it, or ended). The low level then reaches
that state (its state term) while its latent goal stays the goal image, and the high level proposes
again every `macro_steps` control steps. Why: the latent energy to one goal image rewards the greedy
trap, so a search over it never finds the detour a pick needs; the demonstrations hold the detour.

A high-level world model is either a learned predictor fine-tuned on robot logs read every
`macro_steps` frames (`data.reader.frame_stride`), whose action is the summed k-step action, or any
per-step world model wrapped in `MacroActions`, which plays each macro-action as `macro_steps` equal
control steps (the privileged oracle's high level: the simulator itself).
"""
from __future__ import annotations

import torch

from planners.base import Planner, integrate
from planners.energy import goal_energy
from planners.protocol import WorldModel, WorldModelDefaults
from planners.sampling import CEM
from vjepa_ac.state_action import POSITION_DIMS

# The low level's latent goal: the high level's predicted subgoal, or the goal image itself (then the
# high level steers the low level only through the state its first macro-action reaches).
LOW_GOALS = ("subgoal", "goal")
# Macro-action primitives (PrimitiveCEM): which parts of a macro-action are free; the rest is held.
PRIMITIVES = ("horizontal", "vertical", "gripper")


def spread(macros: torch.Tensor, macro_steps: int) -> torch.Tensor:
    """Macro-actions [..., H, A] as control steps [..., H * macro_steps, A]: each played as
    `macro_steps` equal steps of macro / macro_steps (a straight line; the gripper command spread)."""
    return (torch.as_tensor(macros) / macro_steps).repeat_interleave(macro_steps, dim=-2)


def macro_bounds(low, high, macro_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of a macro-action: `macro_steps` times the per-step bounds (the summed action)."""
    return (torch.as_tensor(low, dtype=torch.float32) * macro_steps,
            torch.as_tensor(high, dtype=torch.float32) * macro_steps)


class MacroActions(WorldModelDefaults):
    """A per-step world model driven by macro-actions: each macro-action [A] is played as
    `macro_steps` control steps of macro / macro_steps (a straight line; the gripper command spread
    over the steps), and the prediction after its last step is returned."""

    def __init__(self, world_model: WorldModel, macro_steps: int):
        if macro_steps < 1:
            raise ValueError(f"macro_steps must be >= 1, got {macro_steps}")
        self.world_model = world_model
        self.macro_steps = macro_steps
        self.privileged = world_model.privileged
        self.action_dim = world_model.action_dim
        self.resolution = world_model.resolution
        self.views = world_model.views

    def encode(self, frames) -> torch.Tensor:
        return self.world_model.encode(frames)

    def encode_goal(self, frames) -> torch.Tensor:
        return self.world_model.encode_goal(frames)

    def rollout(self, z: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """macro-actions [B, H, A] -> predictions after each macro-action [B, H, N, D]."""
        k = self.macro_steps
        return self.world_model.rollout(z, state, spread(actions, k))[:, k - 1::k]


class HierarchicalPlanner(Planner):
    """`high` plans macro-actions over `high_model` toward the goal; `low` plans control steps over
    the world model the MPC loop passes toward the latent `high_model` predicts after the first
    macro-action, and (when the low level has a state term) toward the state the first macro-action
    reaches, `state_now + macro-action`, integrated as the world models integrate it. With
    `low_goal="goal"` the low level's latent goal is the goal image instead of the predicted subgoal,
    so the high level steers it through that state alone (the subgoal still times the replanning). Same
    `plan(world_model, z_now, state_now, z_goal) -> [H, A]` as any planner.

    `stats` holds the low level's figures plus `high_plans` (high-level searches so far this
    episode), `high_energy` (the best high-level candidate's predicted energy to the goal) and
    `subgoal_energy` (the current frame's energy to the subgoal, before this plan). `episode_log()`
    lists every subgoal set: the control steps spent on it and the frame's energy to it when it was
    set and at its closest (how well the low level reaches what the high level proposes); a prior's
    subgoal, a state, by the end effector's distance to it in cm instead.
    """

    def __init__(self, low: Planner, high: Planner | None, high_model: WorldModel, macro_steps: int,
                 reached_fraction: float = 0.2, low_goal: str = "subgoal"):
        if macro_steps < 1:
            raise ValueError(f"macro_steps must be >= 1, got {macro_steps}")
        if not 0 <= reached_fraction < 1:
            raise ValueError(f"reached_fraction must be in [0, 1), got {reached_fraction}")
        if low_goal not in LOW_GOALS:
            raise ValueError(f"low_goal must be one of {LOW_GOALS}, got {low_goal!r}")
        if high is None:
            if getattr(high_model, "propose_subgoal", None) is None:
                raise ValueError("without a high-level planner the high-level model must propose subgoals "
                                 "(a world model with a subgoal prior: scripts/train_subgoal_prior.py)")
            if low_goal != "goal":
                raise ValueError("a subgoal prior proposes a state, not a latent: low_goal must be 'goal'")
            if low.state_weight <= 0:
                raise ValueError("a subgoal prior's subgoal is a state: the low-level planner needs state_weight > 0")
        elif high.action_dim != low.action_dim:
            raise ValueError(f"high-level ({high.action_dim}-D) and low-level ({low.action_dim}-D) actions differ")
        super().__init__(low.low, low.high, horizon=low.horizon, frozen_dims=[], seed=low.seed)
        self.low_level, self.high_level, self.high_model = low, high, high_model
        self.macro_steps = macro_steps
        self.reached_fraction = reached_fraction
        self.low_goal = low_goal
        self._reset_episode()

    def _reset_episode(self) -> None:
        self.subgoals: list[dict] = []  # one per high-level plan: steps, start_/closest_energy (or _cm)
        self.subgoal: torch.Tensor | None = None
        self.macro_path: torch.Tensor | None = None  # the high-level plan as control steps [H * k, A]

    @property
    def high_plans(self) -> int:
        return len(self.subgoals)

    @property
    def steps_on_subgoal(self) -> int:
        return self.subgoals[-1]["steps"] if self.subgoals else 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.low_level.reset(seed)
        if self.high_level is not None:
            self.high_level.reset(None if seed is None else seed + 1)
        self._reset_episode()

    def shift(self, steps: int) -> None:
        self.low_level.shift(steps)
        if self.subgoals:
            self.subgoals[-1]["steps"] += steps

    def episode_log(self) -> dict:
        return {"subgoals": [dict(entry) for entry in self.subgoals]}

    def _needs_high_plan(self, subgoal_energy: float) -> bool:
        if self.subgoal is None or self.steps_on_subgoal >= self.macro_steps:
            return True
        # a prior's subgoal is a state, not a latent: no energy tells when it is reached
        return self.high_level is not None and subgoal_energy <= self.reached_fraction * self.subgoals[-1]["start_energy"]

    def _plan_subgoal(self, z_now: torch.Tensor, state_now: torch.Tensor, z_goal: torch.Tensor) -> None:
        """High-level search; the predicted latent after the first macro-action becomes the subgoal. Or,
        without a search, the subgoal prior's proposed state (the latent subgoal is the goal itself)."""
        if self.high_level is None:
            self.low_level.fix_goal_state(self.high_model.propose_subgoal(z_now, state_now, z_goal).cpu())
            self.subgoal, self.macro_path = z_goal, None
            distance = self._cm_to_proposal(state_now)
            self.subgoals.append({"steps": 0, "start_cm": distance, "closest_cm": distance})
            return
        if self.subgoal is not None:
            self.high_level.shift(1)  # one macro-action's worth of control steps was spent on the last subgoal
        macros = self.high_level.plan(self.high_model, z_now, state_now, z_goal)
        self.macro_path = spread(macros, self.macro_steps)
        # the subgoal's state: where the first macro-action takes the integrated state (the low level's state term)
        self.low_level.fix_goal_state(integrate(state_now, macros[None, :1])[:, -1])
        with torch.no_grad():
            self.subgoal = self.high_model.rollout(z_now, state_now, macros[None])[:, 0].to(z_now.device).float()
        energy = goal_energy(z_now, self.subgoal)
        self.subgoals.append({"steps": 0, "start_energy": energy, "closest_energy": energy})

    def _path_ahead(self) -> torch.Tensor:
        """The low level's warm start: the next control steps of the high-level plan (the macro-action
        spread over its k steps), padded with "rest"."""
        low = self.low_level
        ahead = self.macro_path[self.steps_on_subgoal:self.steps_on_subgoal + low.horizon]
        return torch.cat([ahead, low.rest.expand(low.horizon - len(ahead), -1)]).clamp(low.low, low.high)

    def _cm_to_proposal(self, state_now: torch.Tensor) -> float:
        """The end effector's distance to the prior's proposed state, in cm."""
        dims = list(POSITION_DIMS)
        return float((state_now.reshape(-1).cpu()[dims] - self.low_level.fixed_goal_state[0, dims]).norm()) * 100

    def _track_subgoal(self, z_now: torch.Tensor, state_now: torch.Tensor) -> float:
        """Record how near the present is to the current subgoal; returns the frame's energy to it (nan
        for a prior's subgoal, a state, tracked in cm)."""
        entry = self.subgoals[-1]
        if self.high_level is None:
            entry["closest_cm"] = min(entry["closest_cm"], self._cm_to_proposal(state_now))
            return float("nan")
        energy = goal_energy(z_now, self.subgoal)
        entry["closest_energy"] = min(entry["closest_energy"], energy)
        return energy

    def _optimize(self, world_model: WorldModel, z_now, state_now, z_goal) -> torch.Tensor:
        subgoal_energy = self._track_subgoal(z_now, state_now) if self.subgoal is not None else float("inf")
        if self._needs_high_plan(subgoal_energy):
            self._plan_subgoal(z_now, state_now, z_goal)
            subgoal_energy = self.subgoals[-1].get("start_energy", float("nan"))  # nan: a prior's state subgoal
        if self.macro_path is not None:
            self.low_level.previous = self._path_ahead()
        latent_goal = self.subgoal if self.low_goal == "subgoal" else z_goal
        actions = self.low_level.plan(world_model, z_now, state_now, latent_goal)
        high_energy = self.high_level.stats["energy"] if self.high_level is not None else float("nan")
        self.stats = {**self.low_level.stats, "high_plans": self.high_plans, "high_energy": high_energy,
                      "subgoal_energy": subgoal_energy}
        return actions


class PrimitiveCEM(CEM):
    """CEM over macro-action *primitives*: each macro-action is a horizontal move (dx, dy), a
    vertical move (dz) or a gripper command, never a mix (as in parameterised action primitives,
    RAPS, and in the phases of the robot logs: move over, descend, close, lift, carry, lower, open).

    A primitive per macro-action is drawn from its own categorical, refitted to the elites like the
    gripper's; the parameters come from the usual Gaussian, with the dims the primitive does not use
    held (motion at zero, the gripper at "hold"). It keeps the best candidate (`keep_best`): a mean
    over elites of different primitives is none of them. Why: a grasp needs a descent straight down onto the
    object, a close in place and a lift; a Gaussian over all dims at once almost never samples three
    such macro-actions in a row, a categorical over primitives does at a rate of (1/3)^3 times the
    parameters' odds.
    """

    def __init__(self, action_low, action_high, position_dims=POSITION_DIMS, keep_best: bool = True, **kwargs):
        super().__init__(action_low, action_high, keep_best=keep_best, **kwargs)
        if self.gripper_dim is None:
            raise ValueError("PrimitiveCEM needs a free gripper dim (its third primitive)")
        horizontal, vertical = list(position_dims[:2]), [position_dims[2]]
        uses = torch.zeros(len(PRIMITIVES), self.action_dim, dtype=torch.bool)  # [P, A]: dims each primitive sets
        uses[0, horizontal] = uses[1, vertical] = uses[2, self.gripper_dim] = True
        self.uses = uses
        self.primitive_probs = torch.full((self.horizon, len(PRIMITIVES)), 1 / len(PRIMITIVES))
        self._primitives = torch.zeros(0, self.horizon, dtype=torch.long)

    def _initial(self):
        self.primitive_probs = torch.full((self.horizon, len(PRIMITIVES)), 1 / len(PRIMITIVES))
        return super()._initial()

    def _hold(self, actions: torch.Tensor, primitives: torch.Tensor) -> torch.Tensor:
        """Hold every dim the primitive [..] of each macro-action [.., A] does not use."""
        return torch.where(self.uses[primitives], actions, self.rest)

    def _sample(self, mean, std, probs):
        actions = super()._sample(mean, std, probs)  # [S, H, A]
        self._primitives = torch.multinomial(self.primitive_probs, self.num_samples, replacement=True,
                                             generator=self.generator).T  # [S, H]
        return self._hold(actions, self._primitives)

    def _solution(self, mean, probs):
        return self._hold(super()._solution(mean, probs), self.primitive_probs.argmax(-1))

    def _fit(self, actions, weights):
        onehot = torch.nn.functional.one_hot(self._primitives, len(PRIMITIVES)).float()  # [S, H, P]
        new = (weights[:, None, None] * onehot).sum(0)
        m = self.momentum
        self.primitive_probs = self._floor_probs(m * self.primitive_probs + (1 - m) * new)
        return super()._fit(actions, weights)
