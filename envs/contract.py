"""What every env of this package does the same way (docs/architecture.md, "Env"): render-mode and
action checking, and the step info. Shared by the stack's own tasks (envs/manipulation.py) and the
benchmark adapters (envs/benchmark_env.py: Meta-World, OGBench)."""
import numpy as np
from gymnasium import spaces


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

