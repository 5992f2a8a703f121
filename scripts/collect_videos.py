"""Render an unlabeled video corpus from the sim (vjepa_ac/data/sim_collection.py; configs/collect_videos.yaml).

    python scripts/collect_videos.py output_dir=data/videos num_videos=200 num_workers=2
"""

import hydra
from omegaconf import DictConfig

from vjepa_ac.data.sim_collection import collect_videos


@hydra.main(config_path="../configs", config_name="collect_videos", version_base=None)
def main(cfg: DictConfig) -> None:
    collect_videos(cfg)


if __name__ == "__main__":
    main()
