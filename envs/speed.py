"""Env throughput: physics-only control steps/s, rendered frames/s, reset time, env.step/s in one
process and over a gymnasium AsyncVectorEnv (scripts/env_speed.py; the data collectors' reference)."""

import time
from functools import partial
from typing import Callable

import gymnasium as gym
import numpy as np

from envs import make_env


def random_actions(space: gym.spaces.Box, steps: int, seed: int) -> np.ndarray:
    high = space.high
    return np.random.default_rng(seed).uniform(-high, high, (steps, len(high))).astype(np.float32)


def calls_per_s(task: str, resolution: int, calls: int, seed: int,
                call: Callable[[gym.Env, int, np.ndarray], object]) -> float:
    """Calls per second of `call(env, i, action_i)`, i < `calls`, on an env reset with `seed` (uniformly
    random actions drawn beforehand; making and resetting the env is not timed)."""
    env = make_env(task, resolution=resolution)
    env.reset(seed=seed)
    actions = random_actions(env.action_space, calls, seed)
    start = time.perf_counter()
    for i, action in enumerate(actions):
        call(env, i, action)
    rate = calls / (time.perf_counter() - start)
    env.close()
    return rate


def env_steps_per_s(task: str, resolution: int, steps: int, seed: int) -> float:
    """Full ``env.step`` (physics + rendered observation), resets at episode ends included."""
    def step(env: gym.Env, i: int, action: np.ndarray) -> None:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset(seed=seed + i)

    return calls_per_s(task, resolution, steps, seed, step)


def vector_env_steps_per_s(task: str, resolution: int, steps: int, seed: int, num_envs: int) -> float:
    """Rendered env steps/s summed over an AsyncVectorEnv of ``num_envs`` processes (autoreset included)."""
    # spawn, not fork: a forked child inherits the parent's GL context and can hang
    vec = gym.vector.AsyncVectorEnv([partial(make_env, task, resolution=resolution)] * num_envs, context="spawn")
    vec.reset(seed=seed)
    actions = random_actions(vec.single_action_space, steps, seed)
    start = time.perf_counter()
    for action in actions:
        vec.step(np.repeat(action[None], num_envs, axis=0))
    seconds = time.perf_counter() - start
    vec.close()
    return steps * num_envs / seconds


def env_speed_report(task: str, resolution: int, steps: int, seed: int, resets: int, num_envs: int) -> str:
    args = (task, resolution, steps, seed)
    physics = calls_per_s(*args, lambda env, i, action: env.unwrapped.step_physics(action))
    render = calls_per_s(*args, lambda env, i, action: env.render())
    reset_s = 1 / calls_per_s(task, resolution, resets, seed, lambda env, i, action: env.reset(seed=seed + 1 + i))
    return "\n".join([
        f"{task} at {resolution}x{resolution}, {steps} control steps per figure",
        f"physics only (step_physics), 1 process : {physics:8.1f} control steps/s",
        f"rendering only, 1 process               : {render:8.1f} frames/s",
        f"reset (goal-making expert run)          : {reset_s:8.3f} s",
        f"env.step (physics + frame), 1 process   : {env_steps_per_s(*args):8.1f} steps/s = frames/s (resets included)",
        f"AsyncVectorEnv, {num_envs} processes             : {vector_env_steps_per_s(*args, num_envs):8.1f} steps/s = "
        "frames/s (resets included)"])
