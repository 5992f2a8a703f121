"""OGBench (UR5e arm, Robotiq 2F-85 gripper; ``visual-cube-single-v0``) behind this stack's env contract.

``envs.make_env("ogbench-visual-cube-single-v0")`` (config: envs/configs/env/ogbench.yaml). The env speaks the
same contract as the stack's own (docs/architecture.md): ``obs = {"pixels", "state"}`` with the robot's own
measurements only, the 7-D state and action of ``vjepa_ac.state_action``, a goal image and subgoal images in
the reset info, ``is_success`` and ``distances`` for metrics only, a fixed step budget, the oracle's simulator
hooks and a privileged scripted expert (OGBench's own ``CubeMarkovOracle``).

How OGBench maps onto the contract:
- Episodes are OGBench's evaluation tasks (``goals: evaluation``: task ``seed % 5 + 1``, or
  ``options={"task_id": i}``), each with OGBench's own reset noise drawn from the seed; ``goals: random``
  draws the cube's start and goal from OGBench's sampling bounds instead (robot logs, videos).
- The goal image is OGBench's own: the scene with the cube at its goal and the arm at a random pose (OGBench
  builds it at reset; this adapter renders it with its own camera settings). Subgoal images are the frames of
  OGBench's oracle, played from the same initial state (then restored), where its gripper command turns to
  closing or to opening, where closing fingers have stopped, where the cube first leaves the table and where,
  after the release, the hand has risen clear of it (``envs.benchmark_env.GraspPhases``).
- state = [pinch x, y, z, 0, 0, yaw, gripper closure]: the gripper points down; the closure is OGBench's
  ``proprio/gripper_opening`` (0 open, 1 closed, despite its name). The yaw is held (``max_rot_delta: 0``);
  OGBench's oracle solves the task without turning the gripper.
- action = [dx, dy, dz, 0, 0, 0, change of the commanded closure]: one control step is ``substeps`` OGBench
  steps, each moving the pinch target dx / substeps from where the pinch is (OGBench's relative control), the
  fingers' target closure the commanded closure.
- ``is_success`` is OGBench's own test (every cube within 4 cm of its goal).

Install: ``pip install -e '.[ogbench]'`` (ogbench 1.2.2 keeps the stack's mujoco).
"""
from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from envs.benchmark_env import BenchmarkEnv, physics_state
from envs.config import OGBENCH_PREFIX
from vjepa_ac.state_action import GRIPPER_DIM

OGBENCH_TASKS = ("visual-cube-single-v0",)   # the 7-D environment state holds one object
GOAL_SETS = ("evaluation", "random")
NUM_EVALUATION_TASKS = 5
CUBE_Z = 0.02            # a cube's centre resting on the table (its half size)
MIN_TRAVEL = 0.04        # `goals: random` draws goals at least OGBench's success radius from the start


def import_ogbench():
    """OGBench's cube env and its oracle; a clear error when OGBench is not installed."""
    try:
        import ogbench.manipspace  # noqa: F401  (registers OGBench's gymnasium ids)
        from ogbench.manipspace.envs.cube_env import CubeEnv
        from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    except ImportError as error:
        raise ImportError("OGBench is not installed: pip install -e '.[ogbench]' (ogbench==1.2.2)") from error
    return CubeEnv, CubeMarkovOracle


@functools.cache
def cube_sim_class() -> type:
    """OGBench's ``CubeEnv`` with two changes that make an episode a function of its seed: its "observation"
    is a snapshot of the physics state (this adapter renders its own frames, the goal image from the goal's
    snapshot, which OGBench keeps as the goal observation), and the random actions with which OGBench settles
    the goal scene come from the episode's seeded generator (OGBench draws them from a fresh, unseeded action
    space)."""
    cube_env, _ = import_ogbench()

    class CubeSim(cube_env):
        @property
        def action_space(self):
            space = super().action_space
            space.seed(int(self.np_random.integers(2**31)))
            return space

        def compute_observation(self):
            return physics_state(self._model, self._data)

    return CubeSim


def ogbench_name(task: str) -> str:
    """The OGBench env id of an ``ogbench-<env id>`` task."""
    if not task.startswith(OGBENCH_PREFIX):
        raise ValueError(f"an OGBench task is named {OGBENCH_PREFIX}<OGBench env id>, got {task!r}")
    return task[len(OGBENCH_PREFIX):]


class OGBenchEnv(BenchmarkEnv):
    """OGBench's visual single-cube task behind the stack's env contract (module docstring; ``envs.benchmark_env``)."""

    benchmark = "OGBench"
    flip_from_step_before = True   # the Robotiq fingers move within one OGBench step

    def __init__(self, task: str, render_mode: str | None = "rgb_array", **config: Any):
        super().__init__(task, render_mode, config)
        cfg = self.cfg
        name = ogbench_name(task)
        if name not in OGBENCH_TASKS:
            raise ValueError(f"unsupported OGBench task {name!r}; supported: {list(OGBENCH_TASKS)} (the environment "
                             "state holds one object)")
        if cfg["goals"] not in GOAL_SETS:
            raise ValueError(f"goals must be one of {GOAL_SETS}, got {cfg['goals']!r}")
        if cfg["max_rot_delta"] != 0:
            raise ValueError("max_rot_delta must be 0 on OGBench: the adapter holds the gripper's yaw")
        _, oracle_class = import_ogbench()
        resolution = int(cfg["resolution"])
        kwargs = {**gym.spec(name).kwargs, "width": resolution, "height": resolution,
                  "terminate_at_goal": False, "mode": "task"}
        self.sim = cube_sim_class()(**kwargs)
        self.sim.reset(seed=0, options={"task_id": 1})   # OGBench compiles its model at the first reset
        self.oracle = oracle_class(env=self.sim)
        self.model, self.data = self.sim.model, self.sim.data
        self._setup(self.sim.control_timestep(), self.sim.action_high[0])

    # ----- what the robot measures, and the privileged rest -----
    @property
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.sim._pinch_site_id].astype(np.float64)

    @property
    def ee_yaw(self) -> float:
        """OGBench's ``proprio/effector_yaw``."""
        from ogbench.manipspace import lie
        return float(lie.SO3.from_matrix(self.data.site_xmat[self.sim._pinch_site_id].reshape(3, 3))
                     .compute_yaw_radians())

    @property
    def gripper_closure(self) -> float:
        """OGBench's ``proprio/gripper_opening``, which despite its name is 0 open and 1 closed."""
        return float(np.clip(self.data.qpos[self.sim._gripper_opening_joint_id] / 0.8, 0.0, 1.0))

    @property
    def object_pos(self) -> np.ndarray:
        return self.data.joint("object_joint_0").qpos[:3].astype(np.float64)

    @property
    def target_pos(self) -> np.ndarray:
        return self.data.mocap_pos[self.sim._cube_target_mocap_ids[0]].astype(np.float64)

    def privileged_features(self) -> np.ndarray:
        """PRIVILEGED: pinch position, cube position, gripper closure (``ENVIRONMENT_STATE_NAMES``)."""
        return np.concatenate([self.ee_pos, self.object_pos, [self.gripper_closure]]).astype(np.float32)

    def is_success(self) -> bool:
        return bool(all(self.sim._compute_successes()))

    def _after_set_state(self) -> None:
        """Positions and contact forces (OGBench's oracle reads the finger pad's) of the current state."""
        mujoco.mj_forward(self.model, self.data)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    # ----- control -----
    def _og_step(self, og_action: np.ndarray) -> None:
        """One OGBench step (its `step` without the observation): `og_action` in OGBench's units (pinch move m,
        yaw rad, change of finger opening)."""
        self.sim.set_control(self.sim.normalize_action(og_action))
        self.sim.pre_step()
        mujoco.mj_step(self.model, self.data, nstep=self.sim._n_steps)
        mujoco.mj_rnePostConstraint(self.model, self.data)
        self.sim.post_step()

    def _control_step(self, action: np.ndarray) -> None:
        self.cmd_closure = float(np.clip(self.cmd_closure + action[GRIPPER_DIM], 0.0, 1.0))
        for _ in range(self.substeps):
            og_action = np.zeros(5)
            og_action[:3] = action[:3] / self.substeps
            og_action[4] = self.cmd_closure - self.gripper_closure   # OGBench: target = measured + this
            self._og_step(og_action)

    def _oracle_step(self) -> np.ndarray:
        """PRIVILEGED: one OGBench step of its oracle (it reads the cube and its goal), yaw held; its action."""
        info = self.sim.compute_ob_info()
        info["privileged/target_block"] = 0
        info["privileged/target_block_pos"] = self.target_pos
        info["privileged/target_block_yaw"] = np.zeros(1)
        og_action = self.sim.unnormalize_action(np.clip(self.oracle.select_action(None, info), -1.0, 1.0))
        og_action[3] = 0.0
        self._og_step(og_action)
        return og_action

    def _policy_step_closes(self) -> bool:
        return bool(self._oracle_step()[4] > 0)

    def expert_action(self) -> np.ndarray:
        """PRIVILEGED: what OGBench's oracle does over the next control step, as this env's action: it plays
        the oracle for `substeps` OGBench steps on this simulator, sums the pinch moves it commands, takes its
        first gripper command (close or open), and restores the state."""
        start = self.get_sim_state()
        og_actions = [self._oracle_step() for _ in range(self.substeps)]
        self.set_sim_state(start)
        action = np.zeros(7)
        action[:3] = np.sum([a[:3] for a in og_actions], axis=0)
        action[GRIPPER_DIM] = float(og_actions[0][4] > 0) - self.cmd_closure
        return np.clip(action, self.action_space.low, self.action_space.high)

    # ----- episodes -----
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if self.cfg["goals"] == "random" and "task_id" not in options:
            self.task_id, sim_options = None, {"task_info": self._random_task()}
        else:
            if "task_id" in options:
                self.task_id = int(options["task_id"])
            elif seed is not None:
                self.task_id = int(seed) % NUM_EVALUATION_TASKS + 1
            else:
                self.task_id = int(self.np_random.integers(1, NUM_EVALUATION_TASKS + 1))
            sim_options = {"task_id": self.task_id}
        _, reset_info = self.sim.reset(seed=int(self.np_random.integers(2**31)), options=sim_options)
        self.cmd_closure = 0.0
        self._after_set_state()
        self.oracle.reset(None, None)
        self.oracle._final_pos = self.np_random.uniform(*self.sim._arm_sampling_bounds)   # its last, free move:
        self.oracle._final_yaw = 0.0                                                     # seeded, yaw held
        self._make_goal(reset_info["goal"])
        return self._start_episode()

    def _random_task(self) -> dict:
        """A start and a goal of the cube drawn from OGBench's own sampling bounds, MIN_TRAVEL apart at least."""
        while True:
            start = self.np_random.uniform(*self.sim._object_sampling_bounds)
            goal = self.np_random.uniform(*self.sim._target_sampling_bounds)
            if np.linalg.norm(goal - start) >= MIN_TRAVEL:
                return {"task_name": "random", "init_xyzs": np.array([[*start, CUBE_Z]]),
                        "goal_xyzs": np.array([[*goal, CUBE_Z]])}

    def _make_goal(self, goal_physics: np.ndarray) -> None:
        """The goal image and features from OGBench's goal scene; subgoal images at the ``GraspPhases`` of
        OGBench's oracle played from the initial state for the step budget (then the initial state is
        restored). `goal_reached`: whether that run succeeded."""
        start = self.get_sim_state()
        self.set_sim_state(np.concatenate([goal_physics, [0.0]]))
        self.goal_pixels = self._render()
        self.goal_features = self.privileged_features()
        self.set_sim_state(start)
        self._play_policy_for_subgoals()
        self.goal_reached = self.is_success()
        self.set_sim_state(start)
