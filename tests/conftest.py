import os

# Headless MuJoCo rendering on CPU-only machines (envs fall back to osmesa if EGL is missing).
os.environ.setdefault("MUJOCO_GL", "egl")
