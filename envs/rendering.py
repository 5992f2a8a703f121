"""Headless OpenGL backend selection (EGL, then OSMesa) and the offscreen renderer.

MuJoCo binds its GL backend when ``mujoco`` is first imported, from ``MUJOCO_GL``; so the choice is
made in ``envs/__init__.py`` before that import. An explicit ``MUJOCO_GL`` other than egl is respected.
"""

import ctypes.util
import os
import sys
from dataclasses import dataclass

import numpy as np

OBJECT_GEOM_GROUP = 2   # the active object's own geom group (envs/scene.py), so it can be rendered alone
BACKENDS = {"egl": "EGL", "osmesa": "OSMesa"}   # MUJOCO_GL value -> shared library it needs
HELP = ("headless rendering needs MUJOCO_GL=egl (libEGL, e.g. apt install libegl1) or "
        "MUJOCO_GL=osmesa (libOSMesa, e.g. apt install libosmesa6)")


def select_gl_backend() -> str:
    """Set ``MUJOCO_GL`` to egl when libEGL exists, else osmesa when libOSMesa exists, else fail."""
    requested = os.environ.get("MUJOCO_GL", "").lower()
    if requested not in ("", "egl") or "mujoco" in sys.modules:
        return requested      # the user's explicit choice, or too late to change: mujoco is bound
    for backend, library in BACKENDS.items():
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                os.environ["PYOPENGL_PLATFORM"] = "osmesa"
            return backend
    raise RuntimeError(f"no headless OpenGL library found: {HELP}")


def make_renderer(model, resolution: int):
    """A ``mujoco.Renderer`` for square frames, failing with a message naming both backends."""
    import mujoco
    try:
        return mujoco.Renderer(model, resolution, resolution)
    except Exception as error:  # GL context creation errors come in several types
        backend = os.environ.get("MUJOCO_GL", "<unset>")
        raise RuntimeError(f"could not create an offscreen renderer with MUJOCO_GL={backend} ({error}); "
                           f"{HELP}") from error


@dataclass
class ObjectVisibility:
    """How one camera frame shows the object (a segmentation render; a PRIVILEGED measurement)."""
    width: int         # frame columns the object spans, occluders removed
    pixels: int        # object pixels the camera sees
    unoccluded: int    # object pixels with everything else removed

    @property
    def visible_fraction(self) -> float:
        return self.pixels / self.unoccluded if self.unoccluded else 0.0


def object_visibility(renderer, data, camera: str, geom: int) -> ObjectVisibility:
    """Segment ``camera``'s frame twice, with the whole scene and with only ``OBJECT_GEOM_GROUP``,
    and count where geom id ``geom`` shows."""
    import mujoco
    alone = mujoco.MjvOption()
    alone.geomgroup[:] = 0
    alone.geomgroup[OBJECT_GEOM_GROUP] = 1
    masks = []
    renderer.enable_segmentation_rendering()
    try:
        for option in (mujoco.MjvOption(), alone):
            renderer.update_scene(data, camera=camera, scene_option=option)
            ids = renderer.render()     # [H, W, 2]: object id, object type
            masks.append((ids[..., 0] == geom) & (ids[..., 1] == mujoco.mjtObj.mjOBJ_GEOM))
    finally:
        renderer.disable_segmentation_rendering()
    seen, whole = masks
    return ObjectVisibility(width=int(whole.any(axis=0).sum()), pixels=int(seen.sum()), unoccluded=int(whole.sum()))


def camera_visibility(env, cameras: list[str], seeds: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Per camera, the object's width in px at reset and its visible fraction at reset and in the goal
    state (the noiseless expert's end state, which the goal image shows), one entry per seed.
    PRIVILEGED: runs the scripted expert and reads the object's geom."""
    from envs.experts import make_expert
    u = env.unwrapped
    rows = {camera: {"width": [], "visible_at_reset": [], "visible_in_goal": []} for camera in cameras}
    for seed in seeds:
        env.reset(seed=seed)
        for camera in cameras:
            seen = u.object_visibility(camera)
            rows[camera]["width"].append(seen.width)
            rows[camera]["visible_at_reset"].append(seen.visible_fraction)
        expert = make_expert(env)
        for _ in range(u.max_episode_steps):
            u.step_physics(expert.act())
        for camera in cameras:
            rows[camera]["visible_in_goal"].append(u.object_visibility(camera).visible_fraction)
    return {camera: {k: np.array(v) for k, v in row.items()} for camera, row in rows.items()}
