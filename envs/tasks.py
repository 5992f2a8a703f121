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
    picks_up: bool = False          # the expert grasps the object from the table (envs.ExpertWithMistakes can miss)

    def __init__(self, cfg: dict):
        self.cfg = cfg

    def sample_target(self, rng: np.random.Generator, env) -> np.ndarray:
        raise NotImplementedError

    def features(self, env) -> np.ndarray:
        """End-effector position, object position and measured gripper closure (every task the same
        vector, `vjepa_ac.state_action.ENVIRONMENT_STATE_NAMES`: one privileged subgoal prior reads all)."""
        return np.concatenate([env.ee_pos, env.object_pos, [env.gripper_closure]])

    def is_success(self, env) -> bool:
        raise NotImplementedError

    def subgoal_conditions(self, env) -> list[Callable]:
        """Predicates marking intermediate goals along the expert's run, in order; called with ``env``
        at the start of that run. Each subgoal image is the first state after the previous subgoal's
        where its predicate holds."""
        raise NotImplementedError

    @staticmethod
    def _halfway(position: Callable, env) -> Callable:
        """Predicate: ``position(env)`` has covered half its start distance to the target."""
        half = 0.5 * np.linalg.norm(position(env) - env.target_pos)

        def halfway(env):
            return bool(np.linalg.norm(position(env) - env.target_pos) <= half)

        return halfway

    def _grasping(self) -> list[Callable]:
        """Gripper open around the object on the table; then closed on it, before lifting."""
        def open_around_object(env):
            centred = np.linalg.norm(env.ee_pos[:2] - env.object_pos[:2]) < self.cfg["subgoal_tolerance"]
            low = env.ee_pos[2] < env.object_pos[2] + env.object.half_height
            return bool(centred and low and env.gripper_closure < 0.1)

        def closed_on_object(env):
            return bool(env.is_grasped() and env.object_pos[2] - env.object_rest_z < self.cfg["rest_tolerance"])

        return [open_around_object, closed_on_object]

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

    def is_success(self, env):
        return bool(np.linalg.norm(env.ee_pos - env.target_pos) < self.cfg["success_distance"])

    def subgoal_conditions(self, env):
        """The end-effector halfway to the target."""
        return [self._halfway(lambda env: env.ee_pos, env)]


class Grasp(Task):
    name = "grasp"
    picks_up = True

    def sample_target(self, rng, env):
        return env.object_pos + np.array([0.0, 0.0, self.cfg["lift_target"]])

    def is_success(self, env):
        lifted = env.object_pos[2] - env.object_rest_z >= self.cfg["lift_success"]
        return bool(lifted and env.is_grasped())

    def subgoal_conditions(self, env):
        """Open around the object, then closed on it (the goal image shows it lifted)."""
        return self._grasping()


class ReachWithObject(Task):
    name = "reach_with_object"
    start_grasped = True

    def sample_target(self, rng, env):
        return self._sample_away_from(rng, self.cfg["target_low"], self.cfg["target_high"], env.object_pos,
                                      self.cfg["target_min_distance"])

    def is_success(self, env):
        near = np.linalg.norm(env.object_pos - env.target_pos) < self.cfg["success_distance"]
        return bool(near and env.is_grasped())

    def subgoal_conditions(self, env):
        """The held object halfway to the target."""
        return [self._halfway(lambda env: env.object_pos, env)]


class PickPlace(Task):
    name = "pick_place"
    picks_up = True

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

    def subgoal_conditions(self, env):
        """Open around the object and closed on it (as for Grasp: without them even the privileged
        oracle stops above the object); lifted; carried above the target (the two subgoal images of
        the V-JEPA 2-AC pick-and-place evaluation); lowered onto the target, still held."""
        def lifted(env):
            return env.is_grasped() and env.object_pos[2] - env.object_rest_z > self.cfg["subgoal_lift"]

        def above_target(env):
            return env.is_grasped() and self._over_target(env)

        def lowered_at_target(env):
            down = env.object_pos[2] - env.object_rest_z < self.cfg["rest_tolerance"]
            return env.is_grasped() and self._over_target(env) and down

        return [*self._grasping(), lifted, above_target, lowered_at_target]

    def _over_target(self, env) -> bool:
        return bool(np.linalg.norm(env.object_pos[:2] - env.target_pos[:2]) < self.cfg["subgoal_tolerance"])


TASKS = {task.name: task for task in (Reach, Grasp, ReachWithObject, PickPlace)}
