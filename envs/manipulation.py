"""The table-top manipulation env shared by all four tasks (see envs/tasks.py for what differs)."""

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.contract import check_action, check_render_mode, step_info
from envs.config import load_task_config
from envs.controller import DifferentialIK
from envs.experts import ScriptedExpert
from envs.rendering import ObjectVisibility, make_renderer, object_visibility
from envs.rotations import euler_to_mat, mat_to_euler, wrap_angle, yaw_quat
from envs.scene import (FINGER_OPEN, HOME_QPOS, OBJECT_KINDS, TABLE_TOP, ObjectSpec, SceneHandles, apply_object,
                        build_model)
from envs.tasks import TASKS
from vjepa_ac.state_action import STATE_HIGH, STATE_LOW, action_bounds

PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION   # qpos, qvel, ctrl, warm start, time, ...
EPISODE_STATE_SIZE = 6 + 1 + 1 + 3 + 4 + 3   # commanded pose, closure, object kind, size, rgba, target


def control_timing(cfg: dict) -> tuple[int, int]:
    """Physics steps per control step, and how many chunks they are split into for the joint-target ramp."""
    substeps = 1.0 / (cfg["control_hz"] * cfg["physics_timestep"])
    if abs(substeps - round(substeps)) > 1e-6 or round(substeps) < 1:
        raise ValueError(f"control_hz={cfg['control_hz']} x physics_timestep={cfg['physics_timestep']} "
                         "must divide 1 (a whole number of physics steps per control step)")
    substeps, chunks = round(substeps), int(cfg["control_chunks"])
    if substeps % chunks or not 1 <= cfg["ramp_chunks"] <= chunks:
        raise ValueError(f"control_chunks={chunks} must divide the {substeps} physics steps per control step "
                         f"and ramp_chunks={cfg['ramp_chunks']} must lie in [1, control_chunks]")
    return substeps, chunks


class ManipulationEnv(gym.Env):
    """A Panda-like arm on a table with one object, driven by end-effector delta actions.

    obs: ``{"pixels": uint8[H, W, 3], "state": float32[7]}`` (+ ``"wrist_pixels"`` with ``wrist_camera``);
    state and action follow ``vjepa_ac.state_action`` (the end-effector site's pose and measured
    closure; the action is the per-step delta, its gripper entry changes the *commanded* closure).
    Episodes truncate after ``episode_steps``; they never terminate early, so success is judged at
    the end of a fixed budget. The reset info also holds ``subgoal_pixels``: the subgoal images, in order.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, task: str, render_mode: str | None = "rgb_array", **config: Any):
        self.cfg = cfg = load_task_config(task, **config)
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self.task = TASKS[task](cfg)
        self.resolution = int(cfg["resolution"])
        if self.resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {cfg['resolution']}")
        self.substeps, self._chunks = control_timing(cfg)
        self.max_episode_steps = int(cfg["episode_steps"])
        self.metadata = {**self.metadata, "render_fps": cfg["control_hz"]}
        unknown = sorted(set(cfg["object_types"]) - set(OBJECT_KINDS))
        if unknown or not cfg["object_types"]:
            raise ValueError(f"object_types {cfg['object_types']} invalid; choose from {list(OBJECT_KINDS)}")

        self.model = build_model(self.resolution, cfg["physics_timestep"], cfg["shadows"], cfg["multisamples"])
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)
        self.h = SceneHandles(self.model)
        self.ik = DifferentialIK(self.model, self.h, cfg["ik_iterations"], cfg["ik_damping"],
                                 cfg["ik_posture_gain"])
        self._physics_size = mujoco.mj_stateSize(self.model, PHYSICS_STATE)
        self._renderer = None

        image = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)
        obs_spaces = {"pixels": image, "state": spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32)}
        if cfg["wrist_camera"]:
            obs_spaces["wrist_pixels"] = image
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(*action_bounds(cfg["max_pos_delta"], cfg["max_rot_delta"]), dtype=np.float32)
        self._ws_low = np.asarray(cfg["workspace_low"], float)
        self._ws_high = np.asarray(cfg["workspace_high"], float)

        self.cmd_pose = np.zeros(6)   # commanded end-effector [x, y, z, roll, pitch, yaw]
        self.cmd_closure = 0.0
        self._set_object(ObjectSpec("cube", self.h.max_object_size["cube"].copy(), np.array([0.8, 0.2, 0.2, 1.0])))
        self.target_pos = np.zeros(3)
        self.goal_pixels = np.zeros((self.resolution, self.resolution, 3), np.uint8)
        self.goal_wrist_pixels = self.goal_pixels.copy()
        self.goal_features = np.zeros_like(self.task.features(self))
        self.goal_reached = False   # did the goal-making expert run succeed
        # intermediate goal images on the goal-making expert run, in order (envs/tasks.py), their
        # privileged features and the expert step (1-based) each was taken after
        self.subgoal_pixels: list[np.ndarray] = []
        self.subgoal_wrist_pixels: list[np.ndarray] = []
        self.subgoal_features: list[np.ndarray] = []
        self.subgoal_steps: list[int] = []
        self._steps = 0

    # ----- privileged quantities (experts, success, metrics; never the learned planner) -----
    @property
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.h.ee_site].copy()

    @property
    def ee_mat(self) -> np.ndarray:
        return self.data.site_xmat[self.h.ee_site].reshape(3, 3).copy()

    @property
    def gripper_closure(self) -> float:
        opening = self.data.qpos[self.h.finger_qpos].mean() / FINGER_OPEN
        return float(np.clip(1.0 - opening, 0.0, 1.0))

    @property
    def object_pos(self) -> np.ndarray:
        return self.data.qpos[self.h.object_qpos:self.h.object_qpos + 3].copy()

    @property
    def object_quat(self) -> np.ndarray:
        return self.data.qpos[self.h.object_qpos + 3:self.h.object_qpos + 7].copy()

    @property
    def object_rest_z(self) -> float:
        return TABLE_TOP + self.object.half_height

    def _touching(self, geom: int, other: int) -> bool:
        pairs = self.data.contact.geom[: self.data.ncon]
        return bool(np.any(((pairs[:, 0] == geom) & (pairs[:, 1] == other))
                           | ((pairs[:, 0] == other) & (pairs[:, 1] == geom))))

    @property
    def _object_geom(self) -> int:
        return self.h.object_geoms[self.object.kind]

    def _pads_touching(self) -> list[bool]:
        return [self._touching(pad, self._object_geom) for pad in (self.h.left_pad, self.h.right_pad)]

    def is_grasped(self) -> bool:
        """Both finger pads touch the object."""
        return all(self._pads_touching())

    def touching_fingers(self) -> bool:
        return any(self._pads_touching())

    def touching_table(self) -> bool:
        return self._touching(self.h.table, self._object_geom)

    def privileged_features(self) -> np.ndarray:
        """Task-relevant privileged vector; L1 to ``goal_features`` is a task distance."""
        return self.task.features(self)

    def is_success(self) -> bool:
        return self.task.is_success(self)

    def object_visibility(self, camera: str) -> ObjectVisibility:
        """How ``camera`` shows the object now: its width in px and the fraction not occluded."""
        return object_visibility(self._get_renderer(), self.data, camera, self._object_geom)

    # ----- simulation state -----
    def get_sim_state(self) -> np.ndarray:
        """Full physics, controller and episode state as one float vector (see ``set_sim_state``)."""
        physics = np.empty(self._physics_size)
        mujoco.mj_getState(self.model, self.data, physics, PHYSICS_STATE)
        episode = np.concatenate([self.cmd_pose, [self.cmd_closure, OBJECT_KINDS.index(self.object.kind)],
                                  self.object.size, self.object.rgba, self.target_pos])
        return np.concatenate([physics, episode])

    def set_sim_state(self, state: np.ndarray) -> None:
        """Restore a vector from ``get_sim_state`` (also the episode's object and target)."""
        state = np.asarray(state, dtype=np.float64)
        expected = self._physics_size + EPISODE_STATE_SIZE
        if state.shape != (expected,):
            raise ValueError(f"sim state must have shape ({expected},), got {state.shape}")
        physics, episode = state[: self._physics_size], state[self._physics_size:]
        self.cmd_pose = episode[:6].copy()
        self.cmd_closure = float(episode[6])
        obj = ObjectSpec(OBJECT_KINDS[int(episode[7])], episode[8:11].copy(), episode[11:15].copy())
        if not obj.same_as(self.object):    # skipped in oracle rollouts, which restore the same episode
            self._set_object(obj)
        self.target_pos = episode[15:18].copy()
        mujoco.mj_setState(self.model, self.data, physics, PHYSICS_STATE)
        mujoco.mj_forward(self.model, self.data)

    # ----- control -----
    def step_physics(self, action) -> None:
        """One control step (validated, clipped) without rendering: for oracle rollouts and goal making."""
        action, _ = check_action(action, self.action_space)
        self._control_step(action)

    def _control_step(self, action: np.ndarray) -> None:
        """Integrate the delta onto the commanded pose, solve IK, run the physics substeps.

        The commanded pose (not the measured one) is integrated so that a zero action holds still under
        contact forces; it is re-anchored to the measured pose when they drift apart (blocked motion),
        which bounds wind-up.
        """
        ee_pos, ee_euler = self.ee_pos, mat_to_euler(self.ee_mat)
        if np.linalg.norm(self.cmd_pose[:3] - ee_pos) > self.cfg["anchor_distance"] or \
                np.abs(wrap_angle(self.cmd_pose[3:] - ee_euler)).max() > self.cfg["anchor_angle"]:
            self.cmd_pose = np.concatenate([ee_pos, ee_euler])
        target = self.cmd_pose + action[:6]
        target[:3] = np.clip(target[:3], self._ws_low, self._ws_high)
        target[3:5] = np.clip(target[3:5], -self.cfg["max_tilt"], self.cfg["max_tilt"])
        target[5] = wrap_angle(target[5])
        self.cmd_pose = target
        q_now = self.data.qpos[self.h.arm_qpos].copy()
        q_goal = self.ik.solve(q_now, target[:3], euler_to_mat(target[3:]))
        dq = np.clip(q_goal - q_now, -self.cfg["max_joint_step"], self.cfg["max_joint_step"])
        self._set_closure(float(np.clip(self.cmd_closure + action[6], 0.0, 1.0)))
        # ramp the joint targets over the first ramp_chunks chunks, then let the servos settle
        for chunk in range(1, self._chunks + 1):
            self.data.ctrl[self.h.arm_act] = q_now + dq * min(1.0, chunk / self.cfg["ramp_chunks"])
            mujoco.mj_step(self.model, self.data, nstep=self.substeps // self._chunks)

    def _set_closure(self, closure: float) -> None:
        self.cmd_closure = closure
        self.data.ctrl[self.h.gripper_act] = FINGER_OPEN * (1.0 - closure)

    # ----- episodes -----
    def _sample_object(self, rng: np.random.Generator) -> ObjectSpec:
        cfg = self.cfg
        kind = cfg["object_types"][rng.integers(len(cfg["object_types"]))]
        if kind == "cube":
            size = np.full(3, rng.uniform(*cfg["cube_size"]) / 2)
        else:
            size = np.array([rng.uniform(*cfg["cylinder_radius"]), rng.uniform(*cfg["cylinder_height"]) / 2, 0.0])
        base = np.asarray(cfg["object_colors"][rng.integers(len(cfg["object_colors"]))], float)
        rgb = np.clip(base + rng.uniform(-cfg["color_jitter"], cfg["color_jitter"], 3), 0.0, 1.0)
        return ObjectSpec(kind, size, np.append(rgb, 1.0))

    def _set_object(self, obj: ObjectSpec) -> None:
        self.object = obj
        apply_object(self.model, self.h, obj, self.cfg["object_density"], self._scratch)

    def _place_arm(self, ee_pos: np.ndarray, ee_yaw: float) -> None:
        q = self.ik.solve(HOME_QPOS, ee_pos, euler_to_mat(np.array([0.0, 0.0, ee_yaw])), iterations=100)
        self.data.qpos[self.h.arm_qpos] = q
        self.data.ctrl[self.h.arm_act] = q

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng, cfg = self.np_random, self.cfg
        mujoco.mj_resetData(self.model, self.data)
        self._set_object(self._sample_object(rng))
        ee_pos = rng.uniform(cfg["ee_start_low"], cfg["ee_start_high"])
        ee_yaw = rng.uniform(*cfg["ee_start_yaw"])
        self._place_arm(ee_pos, ee_yaw)
        obj = self.h.object_qpos
        if self.task.start_grasped:
            self.data.qpos[obj:obj + 3] = ee_pos
            self.data.qpos[obj + 3:obj + 7] = yaw_quat(ee_yaw)
            self.data.qpos[self.h.finger_qpos] = self.object.half_width
            self._set_closure(1.0)
        else:
            xy = rng.uniform(cfg["object_xy_low"], cfg["object_xy_high"])
            self.data.qpos[obj:obj + 3] = [xy[0], xy[1], self.object_rest_z]
            self.data.qpos[obj + 3:obj + 7] = yaw_quat(rng.uniform(*cfg["object_yaw"]))
            self.data.qpos[self.h.finger_qpos] = FINGER_OPEN
            self._set_closure(0.0)
        mujoco.mj_forward(self.model, self.data)
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)   # settle contacts for one control step
        self.cmd_pose = np.concatenate([self.ee_pos, mat_to_euler(self.ee_mat)])
        self.target_pos = self.task.sample_target(rng, self)
        self._make_goal()
        self._steps = 0
        info = self._info(action_clipped=False)
        # in order; the goal comes last
        info["subgoal_pixels"] = [image.copy() for image in self.subgoal_pixels]
        if self.cfg["wrist_camera"]:
            info["subgoal_wrist_pixels"] = [image.copy() for image in self.subgoal_wrist_pixels]
        return self._obs(), info

    def _make_goal(self) -> None:
        """Goal image and features: the scripted expert's final state, run on a copy of this state.
        Subgoal images are the states on the way where the task's subgoal predicates first hold, in
        order; an expert run that misses one fails the reset."""
        start = self.get_sim_state()
        expert = ScriptedExpert(self, noise=0.0)
        conditions = self.task.subgoal_conditions(self)
        self.subgoal_pixels, self.subgoal_wrist_pixels, self.subgoal_features, self.subgoal_steps = [], [], [], []
        for step in range(1, self.max_episode_steps + 1):
            self._control_step(expert.act())
            reached = len(self.subgoal_steps)
            if reached < len(conditions) and conditions[reached](self):
                self.subgoal_pixels.append(self._render_camera(self.cfg["camera"]))
                if self.cfg["wrist_camera"]:
                    self.subgoal_wrist_pixels.append(self._render_camera("wrist"))
                self.subgoal_features.append(self.privileged_features())
                self.subgoal_steps.append(step)
        if len(self.subgoal_steps) < len(conditions):
            missed = conditions[len(self.subgoal_steps)].__name__
            raise RuntimeError(f"{self.task.name}: the goal-making expert run did not reach subgoal "
                               f"{len(self.subgoal_steps) + 1} of {len(conditions)} ({missed}) within "
                               f"{self.max_episode_steps} steps; raise episode_steps or check the expert")
        self.goal_pixels = self._render_camera(self.cfg["camera"])
        if self.cfg["wrist_camera"]:
            self.goal_wrist_pixels = self._render_camera("wrist")
        self.goal_features = self.privileged_features()
        self.goal_reached = self.is_success()
        self.set_sim_state(start)

    def step(self, action):
        action, clipped = check_action(action, self.action_space)
        self._control_step(action)
        self._steps += 1
        obs = self._obs()
        info = self._info(action_clipped=clipped)
        truncated = self._steps >= self.max_episode_steps
        return obs, float(info["is_success"]), False, truncated, info

    # ----- observations -----
    def _state(self) -> np.ndarray:
        euler = mat_to_euler(self.ee_mat)
        return np.concatenate([self.ee_pos, euler, [self.gripper_closure]]).astype(np.float32)

    def _get_renderer(self):
        if self._renderer is None:
            self._renderer = make_renderer(self.model, self.resolution)
        return self._renderer

    def _render_camera(self, camera: str) -> np.ndarray:
        renderer = self._get_renderer()
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def _obs(self) -> dict:
        obs = {"pixels": self._render_camera(self.cfg["camera"]), "state": self._state()}
        if self.cfg["wrist_camera"]:
            obs["wrist_pixels"] = self._render_camera("wrist")
        return obs

    def _info(self, action_clipped: bool) -> dict:
        info = {**step_info(self, action_clipped), "object_quat": self.object_quat}
        if self.cfg["wrist_camera"]:
            info["goal_wrist_pixels"] = self.goal_wrist_pixels.copy()
        return info

    def render(self):
        if self.render_mode is None:
            return None
        return self._render_camera(self.cfg["camera"])

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
