"""Rotation helpers for the state convention: extrinsic XYZ Euler angles (roll, pitch, yaw).

R = Rz(yaw) @ Ry(pitch) @ Rx(roll), the same as scipy's ``Rotation.from_euler("xyz", ...)``.
Written out by hand because they run in every control step.
"""

import numpy as np


def euler_to_mat(euler: np.ndarray) -> np.ndarray:
    """Rotation matrix of extrinsic XYZ Euler angles ``[roll, pitch, yaw]``."""
    cr, cp, cy = np.cos(euler)
    sr, sp, sy = np.sin(euler)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def mat_to_euler(mat: np.ndarray) -> np.ndarray:
    """Extrinsic XYZ Euler angles ``[roll, pitch, yaw]`` of a rotation matrix (pitch in [-pi/2, pi/2])."""
    pitch = np.arcsin(np.clip(-mat[2, 0], -1.0, 1.0))
    roll = np.arctan2(mat[2, 1], mat[2, 2])
    yaw = np.arctan2(mat[1, 0], mat[0, 0])
    return np.array([roll, pitch, yaw])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (world frame) of the rotation taking ``current`` to ``target``."""
    delta = target @ current.T
    cos_angle = np.clip((np.trace(delta) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos_angle)
    axis = np.array([delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0], delta[1, 0] - delta[0, 1]])
    sin_angle = np.sin(angle)
    if sin_angle < 1e-6:
        if angle < 1e-6:
            return 0.5 * axis
        # angle close to pi: axis from the diagonal of (R + I) / 2
        diag = np.sqrt(np.clip((np.diag(delta) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(diag))
        axis = (delta[:, k] + np.eye(3)[:, k]) / (2.0 * diag[k])
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / (2.0 * sin_angle)


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix of a MuJoCo quaternion ``[w, x, y, z]``."""
    w, x, y, z = quat / np.linalg.norm(quat)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def yaw_quat(yaw: float) -> np.ndarray:
    """MuJoCo quaternion ``[w, x, y, z]`` of a rotation by ``yaw`` about world z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def wrap_angle(angle):
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi
