"""The four tasks: what each episode asks for (target sampling), its success predicate and the
privileged feature vector that task distances and goal features are measured on.

Every predicate reads the privileged simulator state through the env; none of it reaches the learned
planner, which only sees pixels, the goal image and proprioception.
"""

from typing import Callable

import numpy as np


class Task:
    name: str = ""
    start_grasped: bool = False     # the episode starts with the object held in the gripper

    def __init__(self, cfg: dict):
        self.cfg = cfg

    def sample_target(self, rng: np.random.Generator, env) -> np.ndarray:
        raise NotImplementedError

    def features(self, env) -> np.ndarray:
        """End-effector position, object position and measured gripper closure."""
        return np.concatenate([env.ee_pos, env.object_pos, [env.gripper_closure]])

    def is_success(self, env) -> bool:
        raise NotImplementedError

    def subgoal_conditions(self) -> list[Callable]:
        """Predicates marking intermediate goals along the expert's run, in order (none by default)."""
        return []

    def _sample_away_from(self, rng: np.random.Generator, low, high, avoid: np.ndarray,
                          min_distance: float) -> np.ndarray:
        """Uniform sample in [low, high] at least ``min_distance`` from ``avoid`` (rejection sampling)."""
        low, high = np.asarray(low, float), np.asarray(high, float)
        for _ in range(1000):
            sample = rng.uniform(low, high)
            if np.linalg.norm(sample - avoid[: len(sample)]) >= min_distance:
                return sample
        raise ValueError(f"{self.name}: no target in [{low}, {high}] is {min_distance} m away from {avoid}; "
                         "widen the target range or lower target_min_distance")


class Reach(Task):
    name = "reach"

    def sample_target(self, rng, env):
        return self._sample_away_from(rng, self.cfg["target_low"], self.cfg["target_high"], env.ee_pos,
                                      self.cfg["target_min_distance"])

    def features(self, env):
        return env.ee_pos.copy()

    def is_success(self, env):
        return bool(np.linalg.norm(env.ee_pos - env.target_pos) < self.cfg["success_distance"])


class Grasp(Task):
    name = "grasp"

    def sample_target(self, rng, env):
        return env.object_pos + np.array([0.0, 0.0, self.cfg["lift_target"]])

    def is_success(self, env):
        lifted = env.object_pos[2] - env.object_rest_z >= self.cfg["lift_success"]
        return bool(lifted and env.is_grasped())


class ReachWithObject(Task):
    name = "reach_with_object"
    start_grasped = True

    def sample_target(self, rng, env):
        return self._sample_away_from(rng, self.cfg["target_low"], self.cfg["target_high"], env.object_pos,
                                      self.cfg["target_min_distance"])

    def is_success(self, env):
        near = np.linalg.norm(env.object_pos - env.target_pos) < self.cfg["success_distance"]
        return bool(near and env.is_grasped())


class PickPlace(Task):
    name = "pick_place"

    def sample_target(self, rng, env):
        xy = self._sample_away_from(rng, self.cfg["object_xy_low"], self.cfg["object_xy_high"],
                                    env.object_pos, self.cfg["target_min_distance"])
        return np.array([xy[0], xy[1], env.object_rest_z])

    def is_resting(self, env) -> bool:
        """Object on the table (centre near its rest height, touching the table), not held."""
        low = env.object_pos[2] - env.object_rest_z < self.cfg["rest_tolerance"]
        return bool(low and env.touching_table() and not env.touching_fingers())

    def is_success(self, env):
        near = np.linalg.norm(env.object_pos - env.target_pos) < self.cfg["success_distance"]
        return bool(near and self.is_resting(env))

    def subgoal_conditions(self):
        """Object grasped and lifted; then carried above the target (as the V-JEPA 2-AC pick-and-place
        evaluation uses subgoal images)."""
        def lifted(env):
            return env.is_grasped() and env.object_pos[2] - env.object_rest_z > self.cfg["subgoal_lift"]

        def above_target(env):
            return env.is_grasped() and np.linalg.norm(env.object_pos[:2] - env.target_pos[:2]) < 0.02

        return [lifted, above_target]


TASKS = {task.name: task for task in (Reach, Grasp, ReachWithObject, PickPlace)}
