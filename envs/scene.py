"""The MuJoCo model of the table-top scene and named handles into it."""

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from envs.rendering import OBJECT_GEOM_GROUP

SCENE_XML = Path(__file__).resolve().parent / "assets" / "scene.xml"
ARM_JOINTS = [f"joint{i}" for i in range(1, 8)]
HOME_QPOS = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])  # gripper down, fingers along y
FINGER_OPEN = 0.04       # finger slide at full opening (8 cm between the pads)
TABLE_TOP = 0.0
OBJECT_KINDS = ("cube", "cylinder")


@dataclass
class ObjectSpec:
    """One episode's object: which geom is active, its size, colour and mass."""
    kind: str              # "cube" or "cylinder"
    size: np.ndarray       # MuJoCo geom size: box half-extents [3] or cylinder [radius, half-height, 0]
    rgba: np.ndarray       # [4]

    @property
    def half_height(self) -> float:
        return float(self.size[2] if self.kind == "cube" else self.size[1])

    @property
    def half_width(self) -> float:
        """Half the width the fingers close on."""
        return float(self.size[1] if self.kind == "cube" else self.size[0])

    def same_as(self, other: "ObjectSpec") -> bool:
        return self.kind == other.kind and np.array_equal(self.size, other.size) and np.array_equal(self.rgba,
                                                                                                   other.rgba)

    def mass_inertia(self, density: float) -> tuple[float, np.ndarray]:
        if self.kind == "cube":
            ext = 2 * self.size
            mass = density * np.prod(ext)
            inertia = mass / 12 * np.array([ext[1] ** 2 + ext[2] ** 2, ext[0] ** 2 + ext[2] ** 2,
                                            ext[0] ** 2 + ext[1] ** 2])
        else:
            r, h = self.size[0], 2 * self.size[1]
            mass = density * np.pi * r * r * h
            side = mass * (3 * r * r + h * h) / 12
            inertia = np.array([side, side, mass * r * r / 2])
        return float(mass), inertia


def build_model(resolution: int, timestep: float, shadows: bool, multisamples: int) -> mujoco.MjModel:
    """Compile the scene with an offscreen buffer matching ``resolution`` (no larger than needed)."""
    spec = mujoco.MjSpec.from_file(str(SCENE_XML))
    spec.visual.global_.offwidth = resolution
    spec.visual.global_.offheight = resolution
    spec.visual.quality.offsamples = multisamples
    spec.option.timestep = timestep
    if not shadows:
        for light in spec.lights:
            light.castshadow = False
    return spec.compile()


class SceneHandles:
    """Indices into ``MjModel`` / ``MjData`` arrays, resolved once by name."""

    def __init__(self, model: mujoco.MjModel):
        self.arm_qpos = np.array([model.joint(j).qposadr[0] for j in ARM_JOINTS])
        self.arm_dof = np.array([model.joint(j).dofadr[0] for j in ARM_JOINTS])
        self.arm_limits = np.array([model.joint(j).range for j in ARM_JOINTS])
        self.finger_qpos = np.array([model.joint(j).qposadr[0] for j in ("finger_left", "finger_right")])
        self.arm_act = np.array([model.actuator(j).id for j in ARM_JOINTS])
        self.gripper_act = model.actuator("gripper").id
        self.ee_site = model.site("ee").id
        obj_joint = model.joint("object")
        self.object_qpos = obj_joint.qposadr[0]
        self.object_dof = obj_joint.dofadr[0]
        self.object_body = model.body("object").id
        self.object_geoms = {kind: model.geom(f"object_{kind if kind == 'cylinder' else 'box'}").id
                             for kind in OBJECT_KINDS}
        self.left_pad = model.geom("left_pad").id
        self.right_pad = model.geom("right_pad").id
        self.table = model.geom("table").id
        # compiled (largest) sizes: episode sizes must stay within them, see scene.xml
        self.max_object_size = {kind: model.geom_size[g].copy() for kind, g in self.object_geoms.items()}


def apply_object(model: mujoco.MjModel, handles: SceneHandles, obj: ObjectSpec, density: float,
                 scratch: mujoco.MjData) -> None:
    """Enable ``obj``'s geom with its size, colour and mass; hide and disable the other one.
    ``scratch`` is a spare ``MjData`` that ``mj_setConst`` may overwrite."""
    if np.any(obj.size > handles.max_object_size[obj.kind] + 1e-9):
        raise ValueError(f"{obj.kind} size {obj.size} exceeds the compiled maximum "
                         f"{handles.max_object_size[obj.kind]} (raise it in envs/assets/scene.xml)")
    for kind, geom in handles.object_geoms.items():
        active = kind == obj.kind
        model.geom_contype[geom] = model.geom_conaffinity[geom] = int(active)
        model.geom_group[geom] = OBJECT_GEOM_GROUP if active else 3      # group 3 is not rendered
        if active:
            model.geom_size[geom] = obj.size
            model.geom_rgba[geom] = obj.rgba
    mass, inertia = obj.mass_inertia(density)
    model.body_mass[handles.object_body] = mass
    model.body_inertia[handles.object_body] = inertia
    # recompute the mass-dependent constants (invweight0 scales contact softness); without this a
    # light object keeps the compiled mass's constants and its contacts can blow up
    mujoco.mj_setConst(model, scratch)
