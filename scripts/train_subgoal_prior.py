"""Train the subgoal prior on robot logs over a fine-tuned world model (Hydra entry point;
configs/train_subgoal_prior.yaml).

    python scripts/train_subgoal_prior.py world_model=checkpoints/vjepa_ac_tiny data.root=data/robot_logs
"""

import hydra
from omegaconf import DictConfig

from vjepa_ac.subgoal_prior_training import train_subgoal_prior


@hydra.main(config_path="../configs", config_name="train_subgoal_prior", version_base=None)
def main(cfg: DictConfig) -> None:
    print(f"checkpoint: {train_subgoal_prior(cfg)}")


if __name__ == "__main__":
    main()
