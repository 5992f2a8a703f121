"""The robot's state and action vectors: names, order, units and bounds, defined once.

Every part of the stack uses the same 7-D layout (the DROID / V-JEPA 2-AC convention):

state  = [x, y, z, roll, pitch, yaw, gripper]         end-effector pose and measured closure
action = [dx, dy, dz, droll, dpitch, dyaw, gripper]    per-step change of that pose, and the
                                                       change of the *commanded* closure

Positions are metres in the world frame (table top at z = 0, robot base at the origin, x away from
the robot); angles are radians, extrinsic XYZ Euler (zero = gripper pointing straight down,
fingers closing along world y); gripper closure is unitless, 0 = open, 1 = closed. Envs, robot
logs, the predictor and the planners all read these constants instead of restating them.
"""
from __future__ import annotations

import numpy as np

STATE_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
# PRIVILEGED simulator state of every task (envs.tasks.Task.features), logged beside the robot's own for
# privileged baselines only: end-effector position, object position, measured gripper closure
ENVIRONMENT_STATE_NAMES = ("ee_x", "ee_y", "ee_z", "object_x", "object_y", "object_z", "gripper_closure")
UNITS = ("m", "m", "m", "rad", "rad", "rad", "closure")
STATE_DIM = ACTION_DIM = len(STATE_NAMES)

POSITION_DIMS = (0, 1, 2)
ROTATION_DIMS = (3, 4, 5)
GRIPPER_DIM = 6

# The end-effector cannot leave a 2 m box around the robot base (reach ~0.9 m).
STATE_LOW = np.array([-2.0, -2.0, -2.0, -np.pi, -np.pi / 2, -np.pi, 0.0], dtype=np.float32)
STATE_HIGH = np.array([2.0, 2.0, 2.0, np.pi, np.pi / 2, np.pi, 1.0], dtype=np.float32)


def action_bounds(max_pos_delta: float, max_rot_delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-step action bounds (low, high): +-max_pos_delta (m) on position, +-max_rot_delta (rad)
    on rotation, +-1 on the gripper command."""
    high = np.empty(ACTION_DIM, dtype=np.float32)
    high[list(POSITION_DIMS)] = max_pos_delta
    high[list(ROTATION_DIMS)] = max_rot_delta
    high[GRIPPER_DIM] = 1.0
    return -high, high
