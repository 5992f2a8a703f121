"""One episode of a policy in an env, recorded: the loop behind the robot-log collector, the demo, the
frozen-encoder probe and the scripted experts' success rate.

A policy is anything with ``act() -> action``: a scripted expert (privileged: it reads the simulator)
or a random-motion policy. Only the gymnasium API and the observation contract of docs/architecture.md are used.
"""

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from envs.experts import make_expert


@dataclass
class Episode:
    frames: np.ndarray  # uint8 [L, H, W, 3]; frame 0 is the one after reset, L = steps + 1
    states: np.ndarray  # float32 [L, 7]
    actions: np.ndarray  # float32 [L, 7]; row t takes frame t to t+1, the last row is zeros (no next frame)
    success: bool  # info["is_success"] at the last frame
    success_any: bool  # at any frame
    goal_pixels: np.ndarray  # uint8 [H, W, 3], the goal image of the episode
    info: dict[str, np.ndarray] = field(default_factory=dict)  # info[key] of every frame, [L, ...]
    views: dict[str, np.ndarray] = field(default_factory=dict)  # obs[key] of every frame of another camera, [L, H, W, 3]


def record_episode(env: gym.Env, policy, seed: int, max_steps: int | None = None,
                   info_keys: tuple[str, ...] = (), view_keys: tuple[str, ...] = ()) -> Episode:
    """Run `policy.act()` from `env.reset(seed=seed)` until the env truncates or terminates, or after
    `max_steps` steps. Actions are recorded as applied (clipped to the action bounds); `view_keys` are
    the observation keys of further cameras to record (e.g. "wrist_pixels")."""
    obs, info = env.reset(seed=seed)
    low, high = env.action_space.low, env.action_space.high
    frames, states, actions = [obs["pixels"]], [obs["state"]], []
    infos = {k: [np.array(info[k])] for k in info_keys}
    views = {k: [obs[k]] for k in view_keys}
    success_any, done = bool(info["is_success"]), False
    limit = np.inf if max_steps is None else max_steps
    while not done and len(actions) < limit:
        action = np.clip(policy.act(), low, high).astype(np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        frames.append(obs["pixels"])
        states.append(obs["state"])
        actions.append(action)
        for k in info_keys:
            infos[k].append(np.array(info[k]))
        for k in view_keys:
            views[k].append(obs[k])
        success_any |= bool(info["is_success"])
        done = terminated or truncated
    actions.append(np.zeros(env.action_space.shape, np.float32))
    return Episode(np.stack(frames), np.stack(states).astype(np.float32), np.stack(actions), bool(info["is_success"]),
                   success_any, np.asarray(info["goal_pixels"]), {k: np.stack(v) for k, v in infos.items()},
                   {k: np.stack(v) for k, v in views.items()})


def expert_episode(env: gym.Env, seed: int, noise: float = 0.0, max_steps: int | None = None,
                   info_keys: tuple[str, ...] = ()) -> Episode:
    """The scripted expert (PRIVILEGED) from `env.reset(seed=seed)`; its action noise is seeded by `seed` too."""
    expert = make_expert(env, noise=noise, rng=np.random.default_rng(seed))
    return record_episode(env, expert, seed, max_steps, info_keys)


def expert_failures(env: gym.Env, seeds: list[int], noise: float = 0.0) -> list[int]:
    """The seeds whose expert episode does not end in success (at the end of the step budget)."""
    name = env.unwrapped.task.name
    return [s for s in tqdm(seeds, desc=name, unit="episode", leave=False) if not expert_episode(env, s, noise).success]
