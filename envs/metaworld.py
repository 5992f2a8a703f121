"""Meta-World (Sawyer arm; reach-v3, push-v3, pick-place-v3 and 47 more) behind this stack's env contract.

Any MT1 task by name: ``envs.make_env("metaworld-pick-place-v3")`` (config: envs/configs/env/metaworld.yaml).
The env speaks the same contract as the stack's own (docs/architecture.md): ``obs = {"pixels", "state"}``
with the robot's own measurements only, the 7-D state and action of ``vjepa_ac.state_action``, a goal
image and subgoal images in the reset info, ``is_success`` and ``distances`` for metrics only, a fixed
step budget, the oracle's simulator hooks and a privileged scripted expert (Meta-World's own policy).

How Meta-World maps onto the contract:
- state = [hand x, y, z, 0, 0, 0, gripper closure]: Meta-World's tool-centre point (its world frame, m)
  and 1 - its normalised finger opening. The Sawyer hand's orientation is fixed, so the rotation
  entries are 0 and ``max_rot_delta`` is 0.
- action = [dx, dy, dz, 0, 0, 0, change of the commanded closure]: one control step is ``substeps``
  Meta-World steps (``control_hz`` of its 80 Hz); the hand's mocap target moves dx/substeps per step
  (Meta-World's own action is that move in cm, clipped to +-1) and the fingers get the effort
  2 x commanded closure - 1 (Meta-World: -1 opens, +1 closes).
- Each reset draws the task variation (object and goal positions) from Meta-World's own distribution
  with the reset seed (``seeded_rand_vec``), so a seed reproduces its episode; MT1's fixed 50 variations
  are draws from that same distribution.
- The goal image is the last frame of Meta-World's scripted policy, played at its own 80 Hz for the
  step budget from the same initial state on this simulator (then restored); a subgoal image is each
  frame where that run's finger effort turns to closing or to opening, where closing fingers have
  stopped and where the object first leaves the table (a grasp begins, is made, the lift begins, a
  release begins). The privileged expert (``envs.PolicyExpert``) is the same policy through this env's
  7-D actions (``expert_action``). ``is_success`` is Meta-World's ``info["success"]``.

Meta-World 3.1.1 pins mujoco 3.3.0; it runs on the stack's mujoco 4 with ``_reset_mocap_welds`` in place
of its own (``import_metaworld`` installs it; install Meta-World with ``pip install --no-deps
metaworld==3.1.1``, see the README).
"""
from __future__ import annotations

import warnings
from typing import Any

import mujoco
import numpy as np

from envs.benchmark_env import BenchmarkEnv
from envs.config import METAWORLD_PREFIX
from vjepa_ac.state_action import GRIPPER_DIM

# Meta-World's weld of the hand to its mocap body: anchor, relative position, relative quaternion, torque scale
MOCAP_WELD = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])


def _reset_mocap_welds(self) -> None:
    """Meta-World 3.1.1's ``SawyerMocapBase.reset_mocap_welds``, for mujoco 3.3 and 4: it writes the weld's
    first 11 ``eq_data`` fields. Meta-World assigns an 11-vector to the whole row, which mujoco 4 made 12
    long ("could not broadcast input array from shape (11,) into shape (12,)"); the 12th keeps its default."""
    model = self.model
    if model.nmocap > 0 and model.eq_data is not None:
        for i in range(model.eq_data.shape[0]):
            if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                model.eq_data[i, :len(MOCAP_WELD)] = MOCAP_WELD


def import_metaworld():
    """``metaworld``, with the mocap weld fix applied; a clear error when it is not installed."""
    try:
        import metaworld
        import metaworld.policies  # noqa: F401  (the scripted experts)
        from metaworld.sawyer_xyz_env import SawyerMocapBase
    except ImportError as error:
        raise ImportError("Meta-World is not installed: pip install --no-deps metaworld==3.1.1 "
                          "(its metadata pins mujoco 3.3.0; --no-deps keeps the stack's mujoco)") from error
    SawyerMocapBase.reset_mocap_welds = _reset_mocap_welds
    # its scripted policies warn at every action that their gains exceed the action range (they are clipped)
    warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", module="metaworld.policies")
    return metaworld


def metaworld_name(task: str) -> str:
    """The MT1 task name of a ``metaworld-<name>`` task."""
    if not task.startswith(METAWORLD_PREFIX):
        raise ValueError(f"a Meta-World task is named {METAWORLD_PREFIX}<MT1 name>, got {task!r}")
    return task[len(METAWORLD_PREFIX):]


def look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A MuJoCo camera quaternion at `pos` looking at `target`, world z up in the image."""
    forward = np.subtract(target, pos, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, up, -forward]).flatten())
    return quat


class MetaWorldEnv(BenchmarkEnv):
    """One Meta-World MT1 task behind the stack's env contract (module docstring; ``envs.benchmark_env``)."""

    benchmark = "Meta-World"

    def __init__(self, task: str, render_mode: str | None = "rgb_array", **config: Any):
        super().__init__(task, render_mode, config)
        name = metaworld_name(task)
        metaworld = import_metaworld()
        if name not in metaworld.MT1.ENV_NAMES:
            raise ValueError(f"unknown Meta-World task {name!r}; MT1 tasks: {sorted(metaworld.MT1.ENV_NAMES)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # Meta-World's own deprecation and constant warnings
            mt1 = metaworld.MT1(name, seed=0)   # only for the task's class and its fully observable setting
            self.sim = mt1.train_classes[name]()
            self.sim.set_task(mt1.train_tasks[0])
        self.policy = metaworld.policies.ENV_POLICY_MAP[name]()
        self.sim._freeze_rand_vec, self.sim.seeded_rand_vec = False, True   # the reset seed draws the variation
        self.sim.max_path_length = np.iinfo(np.int64).max   # this env keeps its own step budget
        self.model, self.data = self.sim.model, self.sim.data
        self._setup(self.sim.dt, self.sim.action_scale)
        self._aim_camera()

    def _aim_camera(self) -> None:
        """Re-aim the configured camera (``camera_pos: null`` keeps Meta-World's own pose); the goal markers are
        hidden at reset."""
        cfg, model = self.cfg, self.model
        if cfg["camera_pos"] is not None:
            model.cam_pos[self.camera] = cfg["camera_pos"]
            model.cam_quat[self.camera] = look_at_quat(np.asarray(cfg["camera_pos"]), np.asarray(cfg["camera_target"]))
            model.cam_fovy[self.camera] = cfg["camera_fovy"]

    # ----- what the robot measures, and the privileged rest -----
    @property
    def ee_pos(self) -> np.ndarray:
        return np.asarray(self.sim.tcp_center, dtype=np.float64).copy()

    @property
    def gripper_closure(self) -> float:
        return float(1.0 - self._mw_obs[3])

    @property
    def object_pos(self) -> np.ndarray:
        return self._mw_obs[4:7].copy()

    @property
    def target_pos(self) -> np.ndarray:
        return np.asarray(self.sim._target_pos, dtype=np.float64).copy()

    def privileged_features(self) -> np.ndarray:
        """PRIVILEGED: hand position, object position, gripper closure (``ENVIRONMENT_STATE_NAMES``)."""
        return np.concatenate([self.ee_pos, self.object_pos, [self.gripper_closure]]).astype(np.float32)

    def is_success(self) -> bool:
        _, info = self.sim.evaluate_state(self._mw_obs, np.zeros(4, dtype=np.float32))
        return bool(info["success"])

    def _after_set_state(self) -> None:
        mujoco.mj_forward(self.model, self.data)
        self._observe()

    def _observe(self) -> None:
        """Meta-World's own 39-D observation of the current state (its previous-frame half is unused here)."""
        self.sim._prev_obs = self.sim._get_curr_obs_combined_no_goal()
        self._mw_obs = np.clip(self.sim._get_obs(), self.sim.sawyer_observation_space.low,
                               self.sim.sawyer_observation_space.high)

    # ----- control -----
    def _mw_step(self, move: np.ndarray, effort: float) -> None:
        """One Meta-World step without its reward: `move` in Meta-World action units, finger effort."""
        self.sim.set_xyz_action(move)
        self.sim.do_simulation([effort, -effort], n_frames=self.sim.frame_skip)

    def _policy_step(self) -> np.ndarray:
        """PRIVILEGED: one Meta-World step of its scripted policy (it reads the object and goal); its action."""
        mw_action = np.clip(self.policy.get_action(self._mw_obs), -1.0, 1.0)
        self._mw_step(mw_action[:3], float(mw_action[3]))
        mujoco.mj_forward(self.model, self.data)
        self._observe()
        return mw_action

    def _control_step(self, action: np.ndarray) -> None:
        self.cmd_closure = float(np.clip(self.cmd_closure + action[GRIPPER_DIM], 0.0, 1.0))
        move = action[:3] / (self.substeps * self.sim.action_scale)
        for _ in range(self.substeps):
            self._mw_step(move, 2.0 * self.cmd_closure - 1.0)
        for site in self.sim._target_site_config:   # as Meta-World's step: keep the goal sites in place
            self.sim._set_pos_site(*site)
        mujoco.mj_forward(self.model, self.data)
        self._observe()

    def _policy_step_closes(self) -> bool:
        return bool(self._policy_step()[3] > 0)

    def expert_action(self) -> np.ndarray:
        """PRIVILEGED: what Meta-World's scripted policy does over the next control step, as this env's
        action: it plays the policy for `substeps` Meta-World steps on this simulator, measures the
        hand target's move and the first finger effort (a grasp closes once the hand is down, not a control step
        early), and restores the state."""
        start = self.get_sim_state()
        mocap = self.data.mocap_pos[0].copy()
        efforts = [float(self._policy_step()[3]) for _ in range(self.substeps)]
        move = self.data.mocap_pos[0] - mocap
        self.set_sim_state(start)
        action = np.zeros(7)
        action[:3] = move
        action[GRIPPER_DIM] = (float(np.mean(efforts)) + 1.0) / 2.0 - self.cmd_closure
        return np.clip(action, self.action_space.low, self.action_space.high)

    # ----- episodes -----
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.sim.seed(int(self.np_random.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.sim.reset()
        for site_name, _ in self.sim._target_site_config:   # the goal markers would tell the planner the goal
            self.model.site_rgba[self.model.site(site_name).id, 3] = 0.0
        self.cmd_closure = 0.0
        self._observe()
        self._make_goal()
        return self._start_episode()

    def _make_goal(self) -> None:
        """Goal image and features: the state Meta-World's scripted policy reaches, played at its own rate
        (80 Hz, closed loop) for the step budget on this simulator, then restored; subgoal images at that
        run's ``GraspPhases``."""
        start = self.get_sim_state()
        self._play_policy_for_subgoals()
        self.goal_pixels = self._render()
        self.goal_features = self.privileged_features()
        self.goal_reached = self.is_success()
        self.set_sim_state(start)
