"""Train the goal-state head on robot logs over a fine-tuned world model (Hydra entry point;
configs/train_state_head.yaml).

    python scripts/train_state_head.py world_model=runs/finetune/checkpoint data.root=data/robot_logs
"""

import hydra
from omegaconf import DictConfig

from vjepa_ac.state_head_training import train_state_head


@hydra.main(config_path="../configs", config_name="train_state_head", version_base=None)
def main(cfg: DictConfig) -> None:
    print(f"checkpoint: {train_state_head(cfg)}")


if __name__ == "__main__":
    main()
