"""Collect robot logs (noisy scripted experts + random exploration, every task) as a LeRobotDataset v3.0
(vjepa_ac/data/sim_collection.py; configs/collect_robot_logs.yaml).

    python scripts/collect_robot_logs.py output_dir=data/robot_logs episodes_per_task=50 num_workers=2
"""

import hydra
from omegaconf import DictConfig

from vjepa_ac.data.sim_collection import collect_robot_logs


@hydra.main(config_path="../configs", config_name="collect_robot_logs", version_base=None)
def main(cfg: DictConfig) -> None:
    collect_robot_logs(cfg)


if __name__ == "__main__":
    main()
