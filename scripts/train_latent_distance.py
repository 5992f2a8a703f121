"""Train the learned latent distance on robot logs over a fine-tuned world model (Hydra entry point;
configs/train_latent_distance.yaml).

    python scripts/train_latent_distance.py world_model=checkpoints/vjepa_ac_tiny data.root=data/robot_logs
"""

import hydra
from omegaconf import DictConfig

from vjepa_ac.latent_distance_training import train_latent_distance


@hydra.main(config_path="../configs", config_name="train_latent_distance", version_base=None)
def main(cfg: DictConfig) -> None:
    print(f"checkpoint: {train_latent_distance(cfg)}")


if __name__ == "__main__":
    main()
