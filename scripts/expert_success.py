"""Print the scripted experts' success rate per task on seeded episodes (configs/expert_success.yaml).

    python scripts/expert_success.py
"""

import time

import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

import envs


def expert_success(task: str, episodes: int, seed: int, noise: float) -> tuple[int, list[int]]:
    """Number of successes at the end of the episode budget, and the failing seeds."""
    env = envs.make_env(task)
    u = env.unwrapped
    failures = []
    for episode_seed in tqdm(range(seed, seed + episodes), desc=task, unit="episode", leave=False):
        env.reset(seed=episode_seed)
        expert = envs.make_expert(env, noise=noise, rng=np.random.default_rng(episode_seed))
        for _ in range(u.max_episode_steps):
            u.step_physics(expert.act())
        if not u.is_success():
            failures.append(episode_seed)
    env.close()
    return episodes - len(failures), failures


@hydra.main(config_path="../configs", config_name="expert_success", version_base=None)
def main(cfg: DictConfig) -> None:
    print(f"scripted expert (privileged), noise={cfg.noise}, seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1}")
    print(f"{'task':<18} {'success':>9} {'rate':>6} {'seconds':>8}  failing seeds")
    for task in cfg.tasks:
        start = time.perf_counter()
        successes, failures = expert_success(task, cfg.episodes, cfg.seed, cfg.noise)
        seconds = time.perf_counter() - start
        print(f"{task:<18} {successes:>4}/{cfg.episodes:<4} {successes / cfg.episodes:>6.0%} {seconds:>8.1f}  "
              f"{failures[:20]}", flush=True)


if __name__ == "__main__":
    main()
