"""The MPC loop: observe, encode, plan, execute the first action(s), repeat.

The planner and the world model see only what a robot sees: the camera frame (`obs["pixels"]`,
or every view the world model encodes, e.g. `obs["wrist_pixels"]`), the proprioceptive state
(`obs["state"]`) and the goal image (`info["goal_pixels"]`, per view `info["goal_<view>"]`), optionally
preceded by subgoal images (`info["subgoal_<view>"]` at reset, in order; `planners.subgoals` decides
when to move on). Success flags and task distances from `info` are recorded as metrics; they never
steer planning (the privileged oracle world model reads the simulator by itself, and says so).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from planners.base import Planner
from planners.protocol import WorldModel
from planners.subgoals import GoalTracker, SubgoalSwitch


class TimedWorldModel:
    """Wraps a world model, adding up the wall time spent in `encode` and `rollout`; every other
    attribute (`privileged`, `views`, `encode_goal`, the optional `decode_state`, ...) is the wrapped model's."""

    def __init__(self, world_model: WorldModel):
        self.world_model = world_model
        self.encode_s = 0.0
        self.rollout_s = 0.0

    def __getattr__(self, name: str):
        if name == "world_model":  # not set yet (e.g. while copying): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.world_model, name)

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

    def rollout_with_states(self, z, state, actions) -> tuple[torch.Tensor, torch.Tensor]:
        start = time.perf_counter()
        predicted = self.world_model.rollout_with_states(z, state, actions)
        self.rollout_s += time.perf_counter() - start
        return predicted


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
    goal_pixels: list[np.ndarray] = field(default_factory=list)  # subgoal images, then the goal (first view)
    planner_log: dict = field(default_factory=dict)  # Planner.episode_log(), e.g. the subgoals a two-level planner set

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
            "planner_log": self.planner_log,
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
    height, width = frame.shape[-3:-1]
    if resolution is not None and (height, width) != (resolution, resolution):
        raise ValueError(
            f"camera frames are {height}x{width} but the world model encodes "
            f"{resolution}x{resolution} frames: set the env's resolution to {resolution}"
        )


def view_frames(images: list[np.ndarray]) -> np.ndarray:
    """One image per view -> the frame a world model encodes: [H, W, 3] for one view, else [V, H, W, 3]."""
    return np.asarray(images[0]) if len(images) == 1 else np.stack(images)


def observation_frame(obs: dict, views: tuple[str, ...]) -> np.ndarray:
    missing = [v for v in views if v not in obs]
    if missing:
        raise ValueError(f"the world model encodes views {views} but the observation lacks {missing} "
                         "(for wrist_pixels make the env with wrist_camera=true)")
    return view_frames([obs[v] for v in views])


def episode_goals(info: dict, subgoals: SubgoalSwitch | None, views: tuple[str, ...] = ("pixels",)) -> list[np.ndarray]:
    """The goal frames of an episode from the reset info: the goal alone, or, with a subgoal
    switch, the subgoal images in order and then the goal (each view's images side by side). A task
    whose goal-making run passes no subgoal (an empty list, e.g. Meta-World's reach) has the goal alone."""
    missing = [f"goal_{v}" for v in views if f"goal_{v}" not in info]
    if missing:
        raise ValueError(f"the reset info lacks the goal images {missing} of the world model's views {views}")
    goal = view_frames([info[f"goal_{v}"] for v in views])
    if subgoals is None:
        return [goal]
    per_view = [info.get(f"subgoal_{v}") for v in views]
    if any(images is None for images in per_view) or len({len(images) for images in per_view}) != 1:
        raise ValueError(f"subgoal-conditioned MPC needs info['subgoal_<view>'] (lists of equal length) "
                         f"at reset for the views {views}; this env gives none or a mismatch")
    return [view_frames(list(images)) for images in zip(*per_view)] + [goal]


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
    goals = episode_goals(info, subgoals, world_model.views)
    first_frame = observation_frame(obs, world_model.views)
    for goal in goals:
        check_goal_image(goal, first_frame, world_model)
    planner.reset(seed=seed)

    start = time.perf_counter()
    z_goals = world_model.encode_goal(np.stack(goals))
    goal_encode_s = time.perf_counter() - start
    tracker = GoalTracker(subgoals or SubgoalSwitch(), num_goals=len(goals))

    result = EpisodeResult(
        seed=seed, steps=0, success_at_end=False, success_any=False, first_success_step=None, final_distances={},
        goal_encode_s=goal_encode_s, privileged=world_model.privileged, num_goals=len(goals),
        switched_at=tracker.switched_at, goal_pixels=[goal if goal.ndim == 3 else goal[0] for goal in goals],
    )
    if record_frames:
        result.frames.append(obs["pixels"].copy())
    limit = max_steps if max_steps is not None else np.inf
    done = False
    while not done and result.steps < limit:
        timed.encode_s = timed.rollout_s = 0.0
        z_now = timed.encode(observation_frame(obs, world_model.views)[None])
        state_now = torch.as_tensor(np.asarray(obs["state"], dtype=np.float32))[None]
        energy_now = planner.goal_energy(world_model, z_now, z_goals[tracker.index:tracker.index + 1])
        tolerance = tracker.switch.gripper_tolerance
        if tracker.update(result.steps, energy_now, tolerance is None or planner.gripper_reached(state_now, tolerance)):
            energy_now = planner.goal_energy(world_model, z_now, z_goals[tracker.index:tracker.index + 1])
            tracker.update(result.steps, energy_now)  # the new goal's starting energy
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
    result.planner_log = planner.episode_log()
    result.success_at_end = bool(info["is_success"])
    result.final_distances = {k: float(v) for k, v in info.get("distances", {}).items()}
    return result
