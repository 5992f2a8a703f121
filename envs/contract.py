"""What every env of this package does the same way (docs/architecture.md, "Env"): render-mode and
action checking, the step info, and where a benchmark's scripted policy gives subgoal images. Shared by
the stack's own tasks (envs/manipulation.py), Meta-World (envs/metaworld.py) and OGBench (envs/ogbench.py)."""
from typing import NamedTuple

import numpy as np
from gymnasium import spaces

LIFTED = 0.01            # the object's centre this far above where it started: it is lifted
CLOSING = 0.05           # fingers have begun closing once their closure rose this much ...
SETTLED_CLOSURE = 0.01   # ... and have stopped once it changes less than this in a control step
CLEAR = 0.06             # after a release, the hand is clear of the object once this far above its centre


class BenchmarkTask(NamedTuple):
    """What the collectors read of a benchmark's task (``env.unwrapped.task``) on Meta-World and OGBench."""
    name: str
    picks_up: bool = False   # no ExpertWithMistakes there: it needs the stack's own expert


def check_render_mode(render_mode: str | None, metadata: dict) -> str | None:
    """`render_mode` if the env offers it (or None: no rendering); otherwise an error naming the valid ones."""
    if render_mode not in (None, *metadata["render_modes"]):
        raise ValueError(f"render_mode {render_mode!r} not supported; valid: {metadata['render_modes']}")
    return render_mode


def check_action(action, action_space: spaces.Box) -> tuple[np.ndarray, bool]:
    """Validate a 7-D action; return it clipped to the per-step bounds and whether clipping happened."""
    action = np.asarray(action)
    if action.shape != (7,):
        raise ValueError(f"action must have shape (7,) = [dx, dy, dz, droll, dpitch, dyaw, dgripper], "
                         f"got shape {action.shape}")
    if not np.issubdtype(action.dtype, np.number) or not np.all(np.isfinite(action)):
        raise ValueError(f"action must be finite numbers, got {action}")
    action = action.astype(np.float64)
    clipped = np.clip(action, action_space.low, action_space.high)
    return clipped, bool(np.any(clipped != action))


def step_info(env, action_clipped: bool) -> dict:
    """The info of a reset or step: the goal image, success and distances (metrics only), and the
    PRIVILEGED environment state and positions (for privileged baselines). `env` has `goal_pixels`,
    `goal_features`, `is_success()`, `privileged_features()`, `ee_pos`, `object_pos` and `target_pos`."""
    features = env.privileged_features()
    ee, obj, target = env.ee_pos, env.object_pos, np.array(env.target_pos)
    return {
        "goal_pixels": env.goal_pixels.copy(),
        "is_success": env.is_success(),
        "distances": {
            "ee_to_target": float(np.linalg.norm(ee - target)),
            "object_to_target": float(np.linalg.norm(obj - target)),
            "ee_to_object": float(np.linalg.norm(ee - obj)),
            "goal_features_l1": float(np.abs(features - env.goal_features).sum()),
        },
        "action_clipped": action_clipped,
        "environment_state": features,  # PRIVILEGED, logged for privileged baselines
        "ee_pos": ee,
        "object_pos": obj,
        "target_pos": target,
    }


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
