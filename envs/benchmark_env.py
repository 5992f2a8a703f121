"""What the adapters of other benchmarks share (envs/metaworld.py, envs/ogbench.py): a ``BenchmarkEnv`` base
that puts a benchmark's MuJoCo simulator behind the stack's env contract (docs/architecture.md, "Env"), and
``GraspPhases``, where the benchmark's scripted policy gives subgoal images.

A subclass builds the benchmark's simulator as ``self.sim`` (with ``self.model``, ``self.data``) and calls
``_setup``; it says what the robot measures (``ee_pos``, ``gripper_closure``, ``ee_yaw``), the privileged rest
(``object_pos``, ``target_pos``, ``privileged_features``, ``is_success``), how one control step moves the
simulator (``_control_step(action)``), one simulator step of the benchmark's PRIVILEGED scripted policy
(``_policy_step_closes()``: whether its gripper command closes), and ``reset``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.config import load_task_config
from envs.contract import check_action, check_render_mode, step_info
from envs.rendering import make_renderer
from vjepa_ac.state_action import GRIPPER_DIM, STATE_HIGH, STATE_LOW, action_bounds

PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION   # qpos, qvel, ctrl, mocap poses, warm start, time
LIFTED = 0.01            # the object's centre this far above where it started: it is lifted
CLOSING = 0.05           # fingers have begun closing once their closure rose this much ...
SETTLED_CLOSURE = 0.01   # ... and have stopped once it changes less than this in a control step
CLEAR = 0.06             # after a release, the hand is clear of the object once this far above its centre


def physics_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The simulator's integration state (``PHYSICS_STATE``)."""
    state = np.empty(mujoco.mj_stateSize(model, PHYSICS_STATE))
    mujoco.mj_getState(model, data, state, PHYSICS_STATE)
    return state


class BenchmarkTask(NamedTuple):
    """What the collectors read of a benchmark's task (``env.unwrapped.task``) on Meta-World and OGBench."""
    name: str
    picks_up: bool = False   # no ExpertWithMistakes there: it needs the stack's own expert


class GraspPhases:
    """Where a scripted policy's run (played one simulator step at a time) gives subgoal images: its gripper
    command turns to closing or to opening (a grasp, a release begins), closing fingers have stopped (the
    grasp is made; judged at control-step ends), the object first leaves the table (the lift begins) and,
    after a release, the hand first rises clear of the object (so the last move to the goal does not drag it)."""

    def __init__(self, closure: float, object_z: float):
        self.closing = self.settling = self.lifted = self.released = False
        self.closure = self.closure_at_flip = closure
        self.rest_z = object_z

    def update(self, closing: bool, closure: float, object_z: float, hand_z: float,
               control_step_end: bool) -> list[str]:
        """The phases that begin at this simulator step, in order ("flip": the command turned; "lift", "clear",
        "settled"), given the policy's gripper command (closing or not), the measured closure and the
        object's and the hand's heights after the step."""
        events = []
        if closing != self.closing:
            self.closing, self.settling, self.closure_at_flip = closing, closing, closure
            self.released = self.lifted and not closing
            events.append("flip")
        if not self.lifted and object_z - self.rest_z > LIFTED:
            self.lifted = True
            events.append("lift")
        if self.released and hand_z - object_z > CLEAR:
            self.released = False
            events.append("clear")
        if control_step_end:
            moved = closure - self.closure_at_flip > CLOSING
            if self.settling and moved and abs(closure - self.closure) < SETTLED_CLOSURE:
                self.settling = False
                events.append("settled")
            self.closure = closure
        return events


class BenchmarkEnv(gym.Env):
    """A benchmark's simulator behind the stack's env contract (module docstring).

    obs: ``{"pixels": uint8[H, W, 3], "state": float32[7]}``; the reset info holds ``goal_pixels`` and
    ``subgoal_pixels``; ``info`` carries ``is_success``, ``distances`` and the PRIVILEGED
    ``environment_state`` (hand, object, closure) for metrics and privileged baselines only."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    benchmark = ""              # its name, for messages
    flip_from_step_before = False   # a "flip" subgoal image shows the state before the policy's new command
    ee_yaw = 0.0                # the hand's measured yaw (state[5], rad); 0 where the benchmark fixes it

    def __init__(self, task: str, render_mode: str | None, config: dict[str, Any]):
        self.cfg = load_task_config(task, **config)
        self.render_mode = check_render_mode(render_mode, self.metadata)
        if self.cfg["wrist_camera"]:
            raise ValueError(f"wrist_camera=true is not offered on {self.benchmark} "
                             f"({type(self).__module__.replace('.', '/')}.py)")
        self.task = BenchmarkTask(task)

    def _setup(self, sim_step_s: float, sim_step_reach: float) -> None:
        """After the simulator is built: timing, camera, rendering, spaces and the empty goal. `sim_step_s` is
        one simulator step of the benchmark's own control (s), `sim_step_reach` how far it may move the hand (m)."""
        cfg, model = self.cfg, self.model
        self.resolution = int(cfg["resolution"])
        self.max_episode_steps = int(cfg["episode_steps"])
        substeps = 1.0 / (float(cfg["control_hz"]) * sim_step_s)
        if abs(substeps - round(substeps)) > 1e-6 or round(substeps) < 1:
            raise ValueError(f"control_hz={cfg['control_hz']} must divide {self.benchmark}'s {1 / sim_step_s:g} Hz")
        self.substeps = round(substeps)
        self.metadata = {**self.metadata, "render_fps": cfg["control_hz"]}
        self.camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cfg["camera"])
        if self.camera < 0:
            cameras = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"camera {cfg['camera']!r} not in the {self.benchmark} model; cameras: {cameras}")
        if not cfg["shadows"]:
            model.light_castshadow[:] = 0
        model.vis.quality.offsamples = int(cfg["multisamples"])
        self._renderer = None
        self._physics_size = mujoco.mj_stateSize(model, PHYSICS_STATE)
        self.cmd_closure = 0.0
        self.goal_pixels = np.zeros((self.resolution, self.resolution, 3), np.uint8)   # until the first reset
        self.goal_features = np.zeros(7, np.float32)
        self.subgoal_pixels, self.subgoal_features, self.subgoal_steps = [], [], []
        image = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)
        self.observation_space = spaces.Dict({"pixels": image,
                                              "state": spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32)})
        self.action_space = spaces.Box(*action_bounds(cfg["max_pos_delta"], cfg["max_rot_delta"]), dtype=np.float32)
        if cfg["max_pos_delta"] > self.substeps * sim_step_reach:
            raise ValueError(f"max_pos_delta={cfg['max_pos_delta']} m exceeds what {self.substeps} {self.benchmark} "
                             f"steps of {sim_step_reach} m reach; lower it or control_hz")

    # ----- simulation state (the oracle's hooks) -----
    def get_sim_state(self) -> np.ndarray:
        """Physics (mocap poses included) and the commanded closure, within this episode."""
        return np.concatenate([physics_state(self.model, self.data), [self.cmd_closure]])

    def set_sim_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self._physics_size + 1,):
            raise ValueError(f"sim state must have shape ({self._physics_size + 1},), got {state.shape}")
        mujoco.mj_setState(self.model, self.data, state[:-1], PHYSICS_STATE)
        self.cmd_closure = float(state[-1])
        self._after_set_state()

    def _after_set_state(self) -> None:
        """What the benchmark derives from a state it was set to (positions, its own observation)."""
        mujoco.mj_forward(self.model, self.data)

    # ----- control -----
    def step_physics(self, action) -> None:
        """One control step (validated, clipped) without rendering: for oracle rollouts."""
        self._control_step(check_action(action, self.action_space)[0])

    def step(self, action):
        action, clipped = check_action(action, self.action_space)
        self._control_step(action)
        self._steps += 1
        info = step_info(self, action_clipped=clipped)
        truncated = self._steps >= self.max_episode_steps
        return self._obs(), float(info["is_success"]), False, truncated, info

    # ----- episodes -----
    def _start_episode(self) -> tuple[dict, dict]:
        """The reset's return, once the episode's start, goal and subgoals are set."""
        self._steps = 0
        info = step_info(self, action_clipped=False)
        info["subgoal_pixels"] = [image.copy() for image in self.subgoal_pixels]
        return self._obs(), info

    def _play_policy_for_subgoals(self) -> None:
        """Play the benchmark's policy from the current state for the step budget and record a subgoal image
        at each of its ``GraspPhases``; the simulator is left at the run's end (the caller restores it)."""
        self.subgoal_pixels, self.subgoal_features, self.subgoal_steps = [], [], []
        phases = GraspPhases(self.gripper_closure, self.object_pos[2])
        for step in range(self.max_episode_steps * self.substeps):
            before = self.get_sim_state() if self.flip_from_step_before else None
            closing = self._policy_step_closes()
            end = (step + 1) % self.substeps == 0
            for event in phases.update(closing, self.gripper_closure, self.object_pos[2], self.ee_pos[2], end):
                if event == "flip" and before is not None:
                    after = self.get_sim_state()
                    self.set_sim_state(before)
                    self._add_subgoal(step // self.substeps)
                    self.set_sim_state(after)
                else:
                    self._add_subgoal(step // self.substeps + 1)

    def _add_subgoal(self, control_step: int) -> None:
        self.subgoal_pixels.append(self._render())
        self.subgoal_features.append(self.privileged_features())
        self.subgoal_steps.append(control_step)

    # ----- observations -----
    def _state(self) -> np.ndarray:
        state = np.zeros(7, dtype=np.float32)
        state[:3] = self.ee_pos
        state[5] = self.ee_yaw
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

