"""Print the scripted experts' success rate per task on seeded episodes (configs/expert_success.yaml).

    python scripts/expert_success.py
"""

import time

import hydra
from omegaconf import DictConfig

import envs
from envs.rollouts import expert_failures


@hydra.main(config_path="../configs", config_name="expert_success", version_base=None)
def main(cfg: DictConfig) -> None:
    print(f"scripted expert (privileged), noise={cfg.noise}, seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1}")
    print(f"{'task':<18} {'success':>9} {'rate':>6} {'seconds':>8}  failing seeds")
    for task in cfg.tasks:
        start, env = time.perf_counter(), envs.make_env(task)
        failures = expert_failures(env, list(range(cfg.seed, cfg.seed + cfg.episodes)), cfg.noise)
        env.close()
        successes, seconds = cfg.episodes - len(failures), time.perf_counter() - start
        print(f"{task:<18} {successes:>4}/{cfg.episodes:<4} {successes / cfg.episodes:>6.0%} {seconds:>8.1f}  "
              f"{failures[:20]}", flush=True)


if __name__ == "__main__":
    main()
