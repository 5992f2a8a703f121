"""Privileged scripted experts: approach, descend, close, lift, carry, release.

The expert is stateless: each call reads the simulator state (object pose, contacts, commanded
closure) and decides its phase from it, so it works from any state, including states restored with
``set_sim_state``. Motions are proportional steps toward a waypoint, clipped to the action bounds.
"""

import gymnasium as gym
import numpy as np

from envs.rotations import mat_to_euler, quat_to_mat, wrap_angle
from vjepa_ac.state_action import GRIPPER_DIM, ROTATION_DIMS

APPROACH_HEIGHT = 0.1     # pre-grasp / pre-place waypoint above the object
MIN_GRASP_Z = 0.02        # lowest end-effector height for a grasp (fingertips stay off the table)
ALIGN_TOL = 0.012         # xy error allowed before descending
DESCEND_TOL = 0.025       # xy error tolerated once descending (hysteresis)
AT_TOL = 0.01             # position error counted as "arrived"


class ScriptedExpert:
    """``act()`` returns the next action for the env's current state (privileged: reads object poses)."""

    def __init__(self, env: gym.Env, noise: float = 0.0, rng: np.random.Generator | None = None):
        self.env = env.unwrapped
        self.noise = float(noise)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.high = self.env.action_space.high.astype(np.float64)
        self.grasp_offset = np.zeros(3)   # where the grasp aims relative to the object (ExpertWithMistakes)
        self.waypoint: np.ndarray | None = None   # where a reach goes instead of the target (ExpertWithDetour)

    def act(self) -> np.ndarray:
        env = self.env
        if env.task.name == "reach":
            goal = env.target_pos if self.waypoint is None else self.waypoint
            yaw, closure = None, env.cmd_closure
        else:
            goal, yaw, closure = self._manipulate(env)
        action = self._move(env, goal, yaw, closure)
        if self.noise > 0:   # motion only: a noisy gripper command would drop held objects
            action[:6] += self.noise * self.high[:6] * self.rng.standard_normal(6)
        return np.clip(action, -self.high, self.high).astype(np.float32)

    def _move(self, env, goal_pos: np.ndarray, goal_yaw: float | None, closure: float) -> np.ndarray:
        """Delta action toward an end-effector waypoint, upright gripper, commanded closure."""
        euler = mat_to_euler(env.ee_mat)
        yaw_delta = 0.0 if goal_yaw is None else wrap_angle(goal_yaw - euler[2])
        return np.concatenate([goal_pos - env.ee_pos, [-euler[0], -euler[1], yaw_delta],
                               [closure - env.cmd_closure]])

    def _grasp_yaw(self, env) -> float:
        """Gripper yaw that closes the fingers on two opposite cube faces (any yaw for a cylinder)."""
        ee_yaw = mat_to_euler(env.ee_mat)[2]
        if env.object.kind != "cube":
            return ee_yaw
        x_axis = quat_to_mat(env.object_quat)[:, 0]
        cube_yaw = np.arctan2(x_axis[1], x_axis[0])
        return ee_yaw + (wrap_angle(4 * (cube_yaw - ee_yaw)) / 4)

    def _manipulate(self, env) -> tuple[np.ndarray, float | None, float]:
        """Waypoint, yaw and closure for the object tasks."""
        ee, obj = env.ee_pos, env.object_pos
        held = env.cmd_closure > 0.5 and env.is_grasped()
        if env.task.name == "pick_place" and self._placed(env):
            if env.cmd_closure > 0 or env.gripper_closure > 0.05:
                return ee, None, 0.0                                   # release, wait for the fingers
            return np.array([*ee[:2], env.object_rest_z + 2 * APPROACH_HEIGHT]), None, 0.0   # retreat upward
        if held:
            return self._carry(env), None, 1.0
        grasp = np.array([obj[0], obj[1], max(obj[2], MIN_GRASP_Z)]) + self.grasp_offset
        above = grasp + np.array([0, 0, APPROACH_HEIGHT])
        yaw = self._grasp_yaw(env)
        if env.cmd_closure > 0.5:          # closing or closed without a grasp
            if env.gripper_closure < 0.95 and np.linalg.norm(ee - grasp) < 2 * AT_TOL:
                return ee, yaw, 1.0        # fingers still closing on the object
            return ee + np.array([0, 0, 0.03]), yaw, 0.0      # missed: open and back off upward
        xy_err = np.linalg.norm(ee[:2] - grasp[:2])
        yaw_err = abs(wrap_angle(yaw - mat_to_euler(env.ee_mat)[2]))
        descending = ee[2] < above[2] - AT_TOL
        if xy_err > (DESCEND_TOL if descending else ALIGN_TOL) or yaw_err > 0.1:
            return above, yaw, 0.0
        if np.linalg.norm(ee - grasp) > AT_TOL:
            return grasp, yaw, 0.0
        return ee, yaw, 1.0

    def _carry(self, env) -> np.ndarray:
        """End-effector waypoint that moves the held object toward the task's target."""
        offset = env.ee_pos - env.object_pos
        target = env.target_pos
        if env.task.name == "pick_place":
            xy_err = np.linalg.norm(env.object_pos[:2] - target[:2])
            carrying_high = env.object_pos[2] > target[2] + APPROACH_HEIGHT - AT_TOL
            if xy_err > (DESCEND_TOL if not carrying_high else ALIGN_TOL):
                target = np.array([target[0], target[1], target[2] + APPROACH_HEIGHT])
                if env.object_pos[2] < env.object_rest_z + 0.03:   # lift clear of the table first
                    target = np.array([*env.object_pos[:2], target[2]])
            elif env.object_pos[2] - env.object_rest_z < 0.004:
                return env.ee_pos                                 # on the table: stop (then release)
        return target + offset

    @staticmethod
    def _placed(env) -> bool:
        near = np.linalg.norm(env.object_pos[:2] - env.target_pos[:2]) < 2 * ALIGN_TOL
        return bool(near and env.object_pos[2] - env.object_rest_z < 0.004)


def make_expert(env: gym.Env, noise: float = 0.0, rng: np.random.Generator | None = None):
    """Scripted expert for ``env`` (any of the four tasks, or the benchmark's own policy on a Meta-World or
    OGBench env); ``noise`` is the std of Gaussian noise on the motion part of the action (position and rotation deltas)
    as a fraction of their bounds."""
    if hasattr(env.unwrapped, "expert_action"):   # a benchmark's own policy (envs/metaworld.py, envs/ogbench.py)
        return PolicyExpert(env, noise=noise, rng=rng)
    return ScriptedExpert(env, noise=noise, rng=rng)


class PolicyExpert:
    """PRIVILEGED: a benchmark's own scripted policy (Meta-World's, OGBench's), played through the env's
    ``expert_action()``, as an ``act()`` expert with Gaussian motion noise (``noise`` x the position bound),
    like ``ScriptedExpert`` for the stack's own tasks."""

    def __init__(self, env: gym.Env, noise: float = 0.0, rng: np.random.Generator | None = None):
        self.env = env.unwrapped
        self.noise = float(noise)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.high = self.env.action_space.high.astype(np.float64)

    def act(self) -> np.ndarray:
        action = self.env.expert_action()
        if self.noise > 0:
            action[:3] += self.noise * self.high[:3] * self.rng.standard_normal(3)
        return np.clip(action, -self.high, self.high).astype(np.float32)


class ExpertWithRandomSteps:
    """The scripted expert (PRIVILEGED: it reads the simulator) with motion noise; with probability
    `random_prob` a step is a uniformly random move and gripper command instead (rotation held)."""

    def __init__(self, env: gym.Env, noise: float, random_prob: float, rng: np.random.Generator):
        self.expert = make_expert(env, noise=noise, rng=rng)
        self.high = env.action_space.high
        self.random_prob, self.rng = random_prob, rng

    def act(self) -> np.ndarray:
        if self.rng.random() >= self.random_prob:
            return self.expert.act()
        action = self.rng.uniform(-self.high, self.high).astype(np.float32)
        action[list(ROTATION_DIMS)] = 0.0
        return action


class ExpertWithMistakes:
    """A scripted `expert` (PRIVILEGED) whose first grasp aims `offset_range` metres (uniform, random
    direction) beside the object, as a planner that misread where the object is would. It closes where
    that descent ends (arrived, or stopped on the object's edge), holds the close `close_steps`
    control steps, and from then on is the expert itself: it opens, backs off and grasps again from
    wherever the miss left the gripper and the object (pushed, knocked over). `takeover` is the step
    from which the actions are the expert's own (None before): the frames before it are no demonstration.

    Why: demonstrations that never miss show no way back from a miss, and a prior learned from them
    alone, once its planner has closed beside the object, proposes carrying the empty gripper on (as
    DART and DAgger argue, the learner must see the states its own errors lead to)."""

    def __init__(self, expert: ScriptedExpert, offset_range: tuple[float, float], rng: np.random.Generator,
                 close_steps: int = 4):
        self.expert, self.close_steps = expert, close_steps
        angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(*offset_range)
        self.expert.grasp_offset = np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])
        self.steps, self.closed_steps, self.takeover = 0, 0, None
        self.last_z: float | None = None

    def act(self) -> np.ndarray:
        self.steps += 1
        if self.takeover is not None:
            return self.expert.act()
        env = self.expert.env
        z, last_z = env.ee_pos[2], self.last_z
        self.last_z = z
        stalled = (z < env.object_pos[2] + APPROACH_HEIGHT - 2 * AT_TOL and last_z is not None
                   and last_z - z < 0.003)   # descending beside the object, and not getting lower
        if not (self.closed_steps or env.cmd_closure > 0.5 or stalled):
            return self.expert.act()
        self.closed_steps += 1
        if self.closed_steps > self.close_steps:   # the mistaken close is done, on whatever it met
            self.expert.grasp_offset = np.zeros(3)
            self.takeover = self.steps - 1
            return self.expert.act()
        close = np.zeros_like(self.expert.high, dtype=np.float32)
        close[GRIPPER_DIM] = 1.0 - env.cmd_closure   # command the closure to 1, in place
        return close


class ExpertWithDetour:
    """A scripted Reach `expert` (PRIVILEGED) that first goes to the object as if to grasp it, to a point
    `height_range` metres (uniform) above the object's centre, as a planner that misread the reach for a
    grasp would; once there (or after `max_steps`) it is the expert itself and reaches the target.
    `takeover` is the step from which the actions are the expert's own: the frames before it are no
    demonstration.

    Why: reach demonstrations that go straight to the target never show the gripper at the object, where
    the wrist camera sees it large; a subgoal prior learns "object close: grasp it" from the grasps alone
    and, once its planner strays near the object on a reach, proposes closing on it. From the detour's
    end the demonstration shows the way back: this goal asks for no grasp, go to the target. (Tried for the
    wrist prior's Reach: no gain; docs/experiments.md, "The prior also reads the wrist camera".)"""

    def __init__(self, expert: ScriptedExpert, height_range: tuple[float, float], rng: np.random.Generator,
                 max_steps: int = 20):
        self.expert, self.max_steps = expert, max_steps
        self.height = rng.uniform(*height_range)
        self.steps, self.takeover = 0, None

    def act(self) -> np.ndarray:
        self.steps += 1
        env = self.expert.env
        if self.takeover is None:
            waypoint = env.object_pos + np.array([0.0, 0.0, self.height])
            if np.linalg.norm(env.ee_pos - waypoint) > 2 * AT_TOL and self.steps <= self.max_steps:
                self.expert.waypoint = waypoint
                return self.expert.act()
            self.expert.waypoint, self.takeover = None, self.steps - 1
        return self.expert.act()
