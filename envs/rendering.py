"""Headless OpenGL backend selection (EGL, then OSMesa) and the offscreen renderer.

MuJoCo binds its GL backend when ``mujoco`` is first imported, from ``MUJOCO_GL``; so the choice is
made in ``envs/__init__.py`` before that import. An explicit ``MUJOCO_GL`` other than egl is respected.
"""

import ctypes.util
import os
import sys

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
