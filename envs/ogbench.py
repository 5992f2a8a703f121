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
  after the release, the hand has risen clear of it (``envs.contract.GraspPhases``).
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
from gymnasium import spaces

from envs.config import OGBENCH_PREFIX, load_task_config
from envs.contract import BenchmarkTask, GraspPhases, check_action, check_render_mode, step_info
from envs.rendering import make_renderer
from vjepa_ac.state_action import GRIPPER_DIM, STATE_HIGH, STATE_LOW, action_bounds

OGBENCH_TASKS = ("visual-cube-single-v0",)   # the 7-D environment state holds one object
GOAL_SETS = ("evaluation", "random")
NUM_EVALUATION_TASKS = 5
CUBE_Z = 0.02            # a cube's centre resting on the table (its half size)
MIN_TRAVEL = 0.04        # `goals: random` draws goals at least OGBench's success radius from the start
PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION   # qpos, qvel, ctrl, mocap poses (the goal marker), time


def import_ogbench():
    """OGBench's cube env and its oracle; a clear error when OGBench is not installed."""
    try:
        import ogbench.manipspace  # noqa: F401  (registers OGBench's gymnasium ids)
        from ogbench.manipspace.envs.cube_env import CubeEnv
        from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    except ImportError as error:
        raise ImportError("OGBench is not installed: pip install -e '.[ogbench]' (ogbench==1.2.2)") from error
    return CubeEnv, CubeMarkovOracle


def physics_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    state = np.empty(mujoco.mj_stateSize(model, PHYSICS_STATE))
    mujoco.mj_getState(model, data, state, PHYSICS_STATE)
    return state


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


class OGBenchEnv(gym.Env):
    """OGBench's visual single-cube task behind the stack's env contract (module docstring).

    obs: ``{"pixels": uint8[H, W, 3], "state": float32[7]}``; the reset info holds ``goal_pixels`` and
    ``subgoal_pixels``; ``info`` carries ``is_success``, ``distances`` and the PRIVILEGED
    ``environment_state`` (pinch, cube, closure) for metrics and privileged baselines only."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str, render_mode: str | None = "rgb_array", **config: Any):
        self.cfg = cfg = load_task_config(task, **config)
        self.render_mode = check_render_mode(render_mode, self.metadata)
        if cfg["wrist_camera"]:
            raise ValueError("wrist_camera=true is not offered on OGBench (envs/ogbench.py)")
        name = ogbench_name(task)
        if name not in OGBENCH_TASKS:
            raise ValueError(f"unsupported OGBench task {name!r}; supported: {list(OGBENCH_TASKS)} (the environment "
                             "state holds one object)")
        if cfg["goals"] not in GOAL_SETS:
            raise ValueError(f"goals must be one of {GOAL_SETS}, got {cfg['goals']!r}")
        _, oracle_class = import_ogbench()
        self.resolution = int(cfg["resolution"])
        kwargs = {**gym.spec(name).kwargs, "width": self.resolution, "height": self.resolution,
                  "terminate_at_goal": False, "mode": "task"}
        self.sim = cube_sim_class()(**kwargs)
        self.sim.reset(seed=0, options={"task_id": 1})   # OGBench compiles its model at the first reset
        self.oracle = oracle_class(env=self.sim)
        self.task = BenchmarkTask(task)
        self.model, self.data = self.sim.model, self.sim.data
        self.max_episode_steps = int(cfg["episode_steps"])
        self.substeps = self._substeps(float(cfg["control_hz"]))
        self.metadata = {**self.metadata, "render_fps": cfg["control_hz"]}
        self._configure_rendering()
        self._renderer = None
        self.cmd_closure = 0.0
        self.goal_pixels = np.zeros((self.resolution, self.resolution, 3), np.uint8)   # until the first reset
        self.goal_features = np.zeros(7, np.float32)
        self.subgoal_pixels, self.subgoal_features, self.subgoal_steps = [], [], []

        image = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)
        self.observation_space = spaces.Dict({"pixels": image,
                                              "state": spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32)})
        self.action_space = spaces.Box(*action_bounds(cfg["max_pos_delta"], cfg["max_rot_delta"]), dtype=np.float32)
        if cfg["max_rot_delta"] != 0:
            raise ValueError("max_rot_delta must be 0 on OGBench: the adapter holds the gripper's yaw")
        if cfg["max_pos_delta"] > self.substeps * self.sim.action_high[0]:
            raise ValueError(f"max_pos_delta={cfg['max_pos_delta']} m exceeds what {self.substeps} OGBench steps of "
                             f"{self.sim.action_high[0]} m reach; lower it or control_hz")

    def _substeps(self, control_hz: float) -> int:
        substeps = 1.0 / (control_hz * self.sim.control_timestep())
        if abs(substeps - round(substeps)) > 1e-6 or round(substeps) < 1:
            raise ValueError(f"control_hz={control_hz} must divide OGBench's {1 / self.sim.control_timestep():g} Hz")
        return round(substeps)

    def _configure_rendering(self) -> None:
        cfg, model = self.cfg, self.model
        self.camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cfg["camera"])
        if self.camera < 0:
            cameras = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"camera {cfg['camera']!r} not in the OGBench model; cameras: {cameras}")
        if not cfg["shadows"]:
            model.light_castshadow[:] = 0
        model.vis.quality.offsamples = int(cfg["multisamples"])

    # ----- what the robot measures, and the privileged rest -----
    def _ob_info(self) -> dict:
        return self.sim.compute_ob_info()

    @property
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.sim._pinch_site_id].astype(np.float64)

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

    # ----- simulation state (the oracle's hooks) -----
    def get_sim_state(self) -> np.ndarray:
        """Physics (the goal marker's mocap pose included) and the commanded closure, within this episode."""
        return np.concatenate([physics_state(self.model, self.data), [self.cmd_closure]])

    def set_sim_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        size = mujoco.mj_stateSize(self.model, PHYSICS_STATE) + 1
        if state.shape != (size,):
            raise ValueError(f"sim state must have shape ({size},), got {state.shape}")
        mujoco.mj_setState(self.model, self.data, state[:-1], PHYSICS_STATE)
        self.cmd_closure = float(state[-1])
        self._settle_derived()

    def _settle_derived(self) -> None:
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

    def step_physics(self, action) -> None:
        """One control step (validated, clipped) without rendering: for oracle rollouts."""
        self._control_step(check_action(action, self.action_space)[0])

    def _oracle_step(self) -> np.ndarray:
        """PRIVILEGED: one OGBench step of its oracle (it reads the cube and its goal), yaw held; its action."""
        info = self._ob_info()
        info["privileged/target_block"] = 0
        info["privileged/target_block_pos"] = self.target_pos
        info["privileged/target_block_yaw"] = np.zeros(1)
        og_action = self.sim.unnormalize_action(np.clip(self.oracle.select_action(None, info), -1.0, 1.0))
        og_action[3] = 0.0
        self._og_step(og_action)
        return og_action

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
        options = dict(options or {})
        if self.cfg["goals"] == "random" and "task_id" not in options:
            options = {"task_info": self._random_task()}
        else:
            task_id = options.get("task_id", int(seed) % NUM_EVALUATION_TASKS + 1 if seed is not None
                                  else int(self.np_random.integers(1, NUM_EVALUATION_TASKS + 1)))
            options = {"task_id": int(task_id)}
        self.task_id = options.get("task_id")
        _, reset_info = self.sim.reset(seed=int(self.np_random.integers(2**31)), options=options)
        self.cmd_closure = 0.0
        self._settle_derived()
        self.oracle.reset(None, None)
        self.oracle._final_pos = self.np_random.uniform(*self.sim._arm_sampling_bounds)   # its last, free move:
        self.oracle._final_yaw = 0.0                                                     # seeded, yaw held
        self._make_goal(reset_info["goal"])
        self._steps = 0
        info = step_info(self, action_clipped=False)
        info["subgoal_pixels"] = [image.copy() for image in self.subgoal_pixels]
        return self._obs(), info

    def _random_task(self) -> dict:
        """A start and a goal of the cube drawn from OGBench's own sampling bounds, MIN_TRAVEL apart at least."""
        while True:
            start = self.np_random.uniform(*self.sim._object_sampling_bounds)
            goal = self.np_random.uniform(*self.sim._target_sampling_bounds)
            if np.linalg.norm(goal - start) >= MIN_TRAVEL:
                return {"task_name": "random", "init_xyzs": np.array([[*start, CUBE_Z]]),
                        "goal_xyzs": np.array([[*goal, CUBE_Z]])}

    def _make_goal(self, goal_physics: np.ndarray) -> None:
        """The goal image and features from OGBench's goal scene; subgoal images at the phases of OGBench's
        oracle played from the initial state for the step budget (``GraspPhases``; then the initial state is
        restored). `goal_reached`: whether that run succeeded."""
        start = self.get_sim_state()
        self.set_sim_state(np.concatenate([goal_physics, [0.0]]))
        self.goal_pixels = self._render()
        self.goal_features = self.privileged_features()
        self.set_sim_state(start)
        self.subgoal_pixels, self.subgoal_features, self.subgoal_steps = [], [], []
        phases = GraspPhases(self.gripper_closure, self.object_pos[2])
        for step in range(self.max_episode_steps * self.substeps):
            before = self.get_sim_state()
            closing = self._oracle_step()[4] > 0
            end = (step + 1) % self.substeps == 0
            for event in phases.update(closing, self.gripper_closure, self.object_pos[2], self.ee_pos[2], end):
                # a grasp or a release is shown from the step before its command: the fingers move within one
                after = self.get_sim_state() if event == "flip" else None
                if after is not None:
                    self.set_sim_state(before)
                self.subgoal_pixels.append(self._render())
                self.subgoal_features.append(self.privileged_features())
                self.subgoal_steps.append(step // self.substeps + (0 if after is not None else 1))
                if after is not None:
                    self.set_sim_state(after)
        self.goal_reached = self.is_success()
        self.set_sim_state(start)

    def step(self, action):
        action, clipped = check_action(action, self.action_space)
        self._control_step(action)
        self._steps += 1
        info = step_info(self, action_clipped=clipped)
        truncated = self._steps >= self.max_episode_steps
        return self._obs(), float(info["is_success"]), False, truncated, info

    # ----- observations -----
    def _state(self) -> np.ndarray:
        state = np.zeros(7, dtype=np.float32)
        state[:3] = self.ee_pos
        state[5] = self._ob_info()["proprio/effector_yaw"][0]
        state[GRIPPER_DIM] = self.gripper_closure
        return state

    def _render(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = make_renderer(self.model, self.resolution)
        self._renderer.update_scene(self.data, camera=self.camera)
        return self._renderer.render()

    def _obs(self) -> dict:
        return {"pixels": self._render(), "state": self._state()}

    def render(self):
        return None if self.render_mode is None else self._render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.sim.close()
