"""Print env throughput: physics-only control steps/s, rendered env steps/s and frames/s, single process
and gymnasium AsyncVectorEnv (envs/speed.py; configs/env_speed.yaml). Measure on an otherwise idle machine.

    python scripts/env_speed.py
"""

import hydra
from omegaconf import DictConfig

from envs.speed import env_speed_report


@hydra.main(config_path="../configs", config_name="env_speed", version_base=None)
def main(cfg: DictConfig) -> None:
    print(env_speed_report(cfg.task, cfg.resolution, cfg.steps, cfg.seed, cfg.resets, cfg.num_envs))


if __name__ == "__main__":
    main()
