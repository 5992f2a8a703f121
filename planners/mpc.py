"""The MPC loop: observe, encode, plan, execute the first action(s), repeat.

The planner and the world model see only what a robot sees: the camera frame (`obs["pixels"]`),
the proprioceptive state (`obs["state"]`) and the goal image (`info["goal_pixels"]`), optionally
preceded by subgoal images (`info["subgoal_pixels"]` at reset, in order; `planners.subgoals` decides
when to move on). Success flags and task distances from `info` are recorded as metrics; they never
steer planning (the privileged oracle world model reads the simulator by itself, and says so).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from planners.base import Planner
from planners.energy import latent_l1_energy
from planners.protocol import WorldModel
from planners.subgoals import GoalTracker, SubgoalSwitch


class TimedWorldModel:
    """Wraps a world model, adding up the wall time spent in `encode` and `rollout`."""

    def __init__(self, world_model: WorldModel):
        self.world_model = world_model
        self.privileged = world_model.privileged
        self.action_dim = world_model.action_dim
        self.resolution = world_model.resolution
        self.encode_s = 0.0
        self.rollout_s = 0.0

    def encode_goal(self, frames) -> torch.Tensor:
        return self.world_model.encode_goal(frames)

    def encode(self, frames) -> torch.Tensor:
        start = time.perf_counter()
        z = self.world_model.encode(frames)
        self.encode_s += time.perf_counter() - start
        return z

    def rollout(self, z, state, actions) -> torch.Tensor:
        start = time.perf_counter()
        z_pred = self.world_model.rollout(z, state, actions)
        self.rollout_s += time.perf_counter() - start
        return z_pred


@dataclass
class StepRecord:
    """One planning step: energies and where the time went (seconds)."""

    step: int  # env steps executed before this plan
    goal_index: int  # which goal the plan aimed at (subgoals first; 0 = the only goal without subgoals)
    energy_now: float  # L1 energy between the current frame's embedding and that goal's
    energy_planned: float  # predicted energy of the best candidate the planner scored
    encode_s: float  # encoding the current frame
    rollout_s: float  # world-model rollouts (forward passes; a gradient planner's backward is overhead)
    overhead_s: float  # the rest of planning: sampling, energies, refits, backward passes
    executed: int  # actions executed from this plan
    rollout_calls: int
    skipped_nonfinite: int  # candidates skipped for NaN/inf energy


@dataclass
class EpisodeResult:
    seed: int
    steps: int
    success_at_end: bool
    success_any: bool
    first_success_step: int | None
    final_distances: dict[str, float]
    goal_encode_s: float
    privileged: bool  # True when the world model reads the simulator (the oracle baseline)
    num_goals: int = 1  # subgoal images + the final goal
    switched_at: list[int] = field(default_factory=list)  # env step of each move to the next goal
    records: list[StepRecord] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)  # camera frames, first = after reset
    goal_pixels: list[np.ndarray] = field(default_factory=list)  # subgoal images, then the goal

    def time_per_action(self) -> dict[str, float]:
        """Mean planning seconds per executed action, total and split."""
        split = {k: sum(getattr(r, k) for r in self.records) / max(self.steps, 1) for k in ("encode_s", "rollout_s", "overhead_s")}
        return {"total_s": sum(split.values()), **split}

    def summary(self) -> dict:
        """JSON-ready summary (no frames)."""
        return {
            "seed": self.seed,
            "steps": self.steps,
            "success_at_end": self.success_at_end,
            "success_any": self.success_any,
            "first_success_step": self.first_success_step,
            "final_distances": self.final_distances,
            "privileged": self.privileged,
            "num_goals": self.num_goals,
            "switched_at": self.switched_at,
            "time_per_action": self.time_per_action(),
            "goal_encode_s": self.goal_encode_s,
            "records": [asdict(r) for r in self.records],
        }


def check_compatible(env, world_model: WorldModel, planner: Planner) -> None:
    """Fail early, naming both numbers, when env, world model and planner disagree on actions."""
    env_dim = int(np.prod(env.action_space.shape))
    model_dim = world_model.action_dim
    if model_dim is not None and model_dim != env_dim:
        raise ValueError(f"the world model (checkpoint) takes {model_dim}-D actions but the env's actions are {env_dim}-D")
    if planner.action_dim != env_dim:
        raise ValueError(f"the planner's action bounds are {planner.action_dim}-D but the env's actions are {env_dim}-D")


def check_goal_image(goal: np.ndarray, frame: np.ndarray, world_model: WorldModel) -> None:
    if goal.shape != frame.shape:
        raise ValueError(f"goal image has shape {goal.shape} but camera frames are {frame.shape}: render the goal at the env's resolution")
    resolution = world_model.resolution
    if resolution is not None and frame.shape[:2] != (resolution, resolution):
        raise ValueError(
            f"camera frames are {frame.shape[0]}x{frame.shape[1]} but the world model encodes "
            f"{resolution}x{resolution} frames: set the env's resolution to {resolution}"
        )


def episode_goals(info: dict, subgoals: SubgoalSwitch | None) -> list[np.ndarray]:
    """The goal images of an episode from the reset info: the goal alone, or, with a subgoal
    switch, the subgoal images in order and then the goal."""
    goal = np.asarray(info["goal_pixels"])
    if subgoals is None:
        return [goal]
    images = info.get("subgoal_pixels")
    if not images:
        raise ValueError("subgoal-conditioned MPC needs info['subgoal_pixels'] (a non-empty list) at reset; "
                         "this env gives none")
    return [np.asarray(image) for image in images] + [goal]


def run_episode(
    env,
    world_model: WorldModel,
    planner: Planner,
    seed: int,
    max_steps: int | None = None,
    execute_steps: int = 1,
    stop_on_success: bool = False,
    record_frames: bool = False,
    subgoals: SubgoalSwitch | None = None,
) -> EpisodeResult:
    """One MPC episode from `env.reset(seed=seed)`.

    Runs until the env terminates or truncates, `max_steps` actions have been executed, or (with
    `stop_on_success`) the task is solved. The default runs the full budget, so "success at the
    end" is the headline and "success at any step" the secondary figure. With `subgoals`, the
    planner aims at the env's subgoal images in turn, then at the goal image.
    """
    if execute_steps < 1 or execute_steps > planner.horizon:
        raise ValueError(f"execute_steps must be in [1, horizon={planner.horizon}], got {execute_steps}")
    check_compatible(env, world_model, planner)
    timed = TimedWorldModel(world_model)
    obs, info = env.reset(seed=seed)
    goals = episode_goals(info, subgoals)
    for goal in goals:
        check_goal_image(goal, obs["pixels"], world_model)
    planner.reset(seed=seed)

    start = time.perf_counter()
    z_goals = world_model.encode_goal(np.stack(goals))
    goal_encode_s = time.perf_counter() - start
    tracker = GoalTracker(subgoals or SubgoalSwitch(), num_goals=len(goals))

    result = EpisodeResult(
        seed=seed, steps=0, success_at_end=False, success_any=False, first_success_step=None, final_distances={},
        goal_encode_s=goal_encode_s, privileged=world_model.privileged, num_goals=len(goals),
        switched_at=tracker.switched_at, goal_pixels=goals,
    )
    if record_frames:
        result.frames.append(obs["pixels"].copy())
    limit = max_steps if max_steps is not None else np.inf
    done = False
    while not done and result.steps < limit:
        timed.encode_s = timed.rollout_s = 0.0
        z_now = timed.encode(obs["pixels"][None])
        energy_now = float(latent_l1_energy(z_now[:, None], z_goals[tracker.index:tracker.index + 1])[0])
        if tracker.update(result.steps, energy_now):
            energy_now = float(latent_l1_energy(z_now[:, None], z_goals[tracker.index:tracker.index + 1])[0])
            tracker.update(result.steps, energy_now)  # the new goal's starting energy
        state_now = torch.as_tensor(np.asarray(obs["state"], dtype=np.float32))[None]
        start = time.perf_counter()
        actions = planner.plan(timed, z_now, state_now, z_goals[tracker.index:tracker.index + 1])
        plan_s = time.perf_counter() - start

        executed = 0
        for action in actions[:execute_steps]:
            obs, _, terminated, truncated, info = env.step(action.cpu().numpy().astype(np.float32))
            executed += 1
            result.steps += 1
            if record_frames:
                result.frames.append(obs["pixels"].copy())
            if info["is_success"] and not result.success_any:
                result.success_any, result.first_success_step = True, result.steps
            done = terminated or truncated or result.steps >= limit or (stop_on_success and bool(info["is_success"]))
            if done:
                break
        planner.shift(executed)
        result.records.append(StepRecord(
            step=result.steps - executed,
            goal_index=tracker.index,
            energy_now=energy_now,
            energy_planned=planner.stats["energy"],
            encode_s=timed.encode_s,
            rollout_s=timed.rollout_s,
            overhead_s=plan_s - timed.rollout_s,
            executed=executed,
            rollout_calls=planner.stats["rollout_calls"],
            skipped_nonfinite=planner.stats["skipped_nonfinite"],
        ))
    result.success_at_end = bool(info["is_success"])
    result.final_distances = {k: float(v) for k, v in info.get("distances", {}).items()}
    return result
