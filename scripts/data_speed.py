"""Data pipeline throughput (vjepa_ac/speed.py; configs/data_speed.yaml): collection frames/s of both
collectors with 1 and 2 workers against the renderer's own frames/s, the readers' items/s, and dataset
sizes on disk.

    flock /tmp/vjepa_heavy.lock python scripts/data_speed.py 2>&1 | tee outputs/data_speed.log
"""

import hydra
from omegaconf import DictConfig

from vjepa_ac.speed import data_speed


@hydra.main(config_path="../configs", config_name="data_speed", version_base=None)
def main(cfg: DictConfig) -> None:
    data_speed(cfg, {name: hydra.compose(name) for name in ("collect_videos", "collect_robot_logs")})


if __name__ == "__main__":
    main()
