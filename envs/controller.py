"""End-effector controller: differential inverse kinematics onto stiff joint position servos.

Each control step turns a target end-effector pose into joint targets with a few damped-least-squares
iterations on MuJoCo's site Jacobian (on a private ``MjData``, kinematics only), plus a null-space
term pulling toward the home posture. The joint servos (position actuators on a gravity-compensated
arm) then track those targets during the physics substeps; no Python runs per substep.
"""

import mujoco
import numpy as np

from envs.rotations import rotation_error
from envs.scene import HOME_QPOS, SceneHandles


class DifferentialIK:
    def __init__(self, model: mujoco.MjModel, handles: SceneHandles, iterations: int, damping: float,
                 posture_gain: float):
        self.model = model
        self.h = handles
        self.data = mujoco.MjData(model)
        self.iterations = iterations
        self.damping2 = damping ** 2
        self.posture_gain = posture_gain
        margin = 0.01
        self.q_low = handles.arm_limits[:, 0] + margin
        self.q_high = handles.arm_limits[:, 1] - margin
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def _forward(self, q: np.ndarray) -> None:
        self.data.qpos[self.h.arm_qpos] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def solve(self, q: np.ndarray, target_pos: np.ndarray, target_mat: np.ndarray,
              iterations: int | None = None) -> np.ndarray:
        """Joint positions near ``q`` that put the end-effector site at the target pose."""
        q = q.copy()
        site = self.h.ee_site
        for _ in range(self.iterations if iterations is None else iterations):
            self._forward(q)
            pos_err = target_pos - self.data.site_xpos[site]
            rot_err = rotation_error(target_mat, self.data.site_xmat[site].reshape(3, 3))
            error = np.concatenate([pos_err, rot_err])
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, site)
            jac = np.vstack([self._jacp[:, self.h.arm_dof], self._jacr[:, self.h.arm_dof]])
            jjt = jac @ jac.T + self.damping2 * np.eye(6)
            pinv = jac.T @ np.linalg.inv(jjt)
            posture = self.posture_gain * (HOME_QPOS - q)
            dq = pinv @ error + (np.eye(7) - pinv @ jac) @ posture
            q = np.clip(q + dq, self.q_low, self.q_high)
        return q
