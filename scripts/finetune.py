"""Fine-tune the action-conditioned predictor on robot logs (Hydra entry point; configs/finetune.yaml).

    python scripts/finetune.py data.root=data/robot_logs encoder.path=runs/pretrain/checkpoint
    python scripts/finetune.py data.root=data/robot_logs encoder.path=checkpoints/vjepa_ac_tiny  # shipped encoder
    python scripts/finetune.py encoder.source=hf encoder.path=facebook/vjepa2-vitl-fpc64-256 world_model.pool=1
    torchrun --nproc_per_node=2 scripts/finetune.py device=cpu ...
"""

import os

import hydra
from omegaconf import DictConfig

from vjepa_ac.finetune import finetune


@hydra.main(config_path="../configs", config_name="finetune", version_base=None)
def main(cfg: DictConfig) -> None:
    path = finetune(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {path}")


if __name__ == "__main__":
    main()
