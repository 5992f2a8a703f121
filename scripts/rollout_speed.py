"""Rollout throughput of the world model on this CPU: what bounds planning cost (vjepa_ac/speed.py;
configs/rollout_speed.yaml).

    flock /tmp/vjepa_heavy.lock python scripts/rollout_speed.py                 # random weights, tiny sizes
    python scripts/rollout_speed.py speed.random_weights=false checkpoint=runs/finetune/checkpoint
    python scripts/rollout_speed.py 'speed.sweep=[{dim:64,depth:3},{pool:4}]'   # compare predictor sizes

Prints, per (candidates B, horizon H), the time of one batched `rollout` call and candidate-steps/s
(B * H / time), plus the time to encode one frame. A CEM iteration is one such call, so a plan of I
iterations costs about encode + I * rollout time.
"""

import hydra
import torch
from omegaconf import DictConfig

from vjepa_ac.speed import rollout_speed


@hydra.main(config_path="../configs", config_name="rollout_speed", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    rollout_speed(cfg)


if __name__ == "__main__":
    main()
