"""Print env throughput: physics-only control steps/s, rendered env steps/s and frames/s, single process
and gymnasium AsyncVectorEnv (configs/env_speed.yaml). Measure on an otherwise idle machine.

    python scripts/env_speed.py
"""

import time
from functools import partial

import gymnasium
import hydra
import numpy as np
from omegaconf import DictConfig

import envs


def random_actions(space: gymnasium.spaces.Box, steps: int, seed: int) -> np.ndarray:
    high = space.high
    return np.random.default_rng(seed).uniform(-high, high, (steps, len(high))).astype(np.float32)


def physics_steps_per_s(task: str, resolution: int, steps: int, seed: int) -> float:
    """``step_physics`` only (no rendering), as in oracle rollouts."""
    env = envs.make_env(task, resolution=resolution)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in random_actions(env.action_space, steps, seed):
        env.unwrapped.step_physics(action)
    return steps / (time.perf_counter() - start)


def render_frames_per_s(task: str, resolution: int, steps: int, seed: int) -> float:
    """Rendering alone: one exterior-camera frame of the current state per call."""
    env = envs.make_env(task, resolution=resolution)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        env.render()
    return steps / (time.perf_counter() - start)


def reset_seconds(task: str, resolution: int, resets: int, seed: int) -> float:
    """Mean ``reset`` time; it includes the goal-making expert run and two rendered frames."""
    env = envs.make_env(task, resolution=resolution)
    env.reset(seed=seed)
    start = time.perf_counter()
    for i in range(resets):
        env.reset(seed=seed + 1 + i)
    return (time.perf_counter() - start) / resets


def env_steps_per_s(task: str, resolution: int, steps: int, seed: int) -> float:
    """Full ``env.step`` (physics + rendered observation), resets at episode ends included, as in
    the vector env."""
    env = envs.make_env(task, resolution=resolution)
    env.reset(seed=seed)
    start = time.perf_counter()
    for i, action in enumerate(random_actions(env.action_space, steps, seed)):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset(seed=seed + i)
    return steps / (time.perf_counter() - start)


def vector_env_steps_per_s(task: str, resolution: int, steps: int, seed: int, num_envs: int) -> float:
    """Rendered env steps/s summed over an AsyncVectorEnv of ``num_envs`` processes (autoreset included)."""
    # spawn, not fork: a forked child inherits the parent's GL context and can hang
    vec = gymnasium.vector.AsyncVectorEnv([partial(envs.make_env, task, resolution=resolution)] * num_envs,
                                          context="spawn")
    vec.reset(seed=seed)
    actions = random_actions(vec.single_action_space, steps, seed)
    start = time.perf_counter()
    for action in actions:
        vec.step(np.repeat(action[None], num_envs, axis=0))
    seconds = time.perf_counter() - start
    vec.close()
    return steps * num_envs / seconds


@hydra.main(config_path="../configs", config_name="env_speed", version_base=None)
def main(cfg: DictConfig) -> None:
    args = (cfg.task, cfg.resolution, cfg.steps, cfg.seed)
    print(f"{cfg.task} at {cfg.resolution}x{cfg.resolution}, {cfg.steps} control steps per figure")
    print(f"physics only (step_physics), 1 process : {physics_steps_per_s(*args):8.1f} control steps/s")
    print(f"rendering only, 1 process               : {render_frames_per_s(*args):8.1f} frames/s")
    print(f"reset (goal-making expert run)          : {reset_seconds(cfg.task, cfg.resolution, 10, cfg.seed):8.3f} s")
    print(f"env.step (physics + frame), 1 process   : {env_steps_per_s(*args):8.1f} steps/s = frames/s"
          " (resets included)")
    rate = vector_env_steps_per_s(*args, cfg.num_envs)
    print(f"AsyncVectorEnv, {cfg.num_envs} processes             : {rate:8.1f} steps/s = frames/s"
          " (resets included)")


if __name__ == "__main__":
    main()
