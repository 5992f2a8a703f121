"""V-JEPA pretraining of the video encoder (Hydra entry point; see configs/pretrain.yaml).

    python scripts/pretrain.py data.root=data/videos output_dir=runs/pretrain_tiny
    torchrun --nproc_per_node=2 scripts/pretrain.py data.root=data/videos device=cpu
"""

import os

import hydra
from omegaconf import DictConfig

from vjepa_ac.pretrain import pretrain


@hydra.main(config_path="../configs", config_name="pretrain", version_base=None)
def main(cfg: DictConfig) -> None:
    path = pretrain(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {path}")


if __name__ == "__main__":
    main()
