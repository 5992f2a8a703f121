"""Does the world model learn dynamics? L1 prediction error on held-out episodes, by horizon, against
copy-last and shuffled-actions baselines (vjepa_ac/dynamics_eval.py; configs/eval_dynamics.yaml).

    python scripts/eval_dynamics.py checkpoint=runs/finetune/checkpoint data.root=data/robot_logs
    python scripts/eval_dynamics.py checkpoint=checkpoints/vjepa_ac_tiny_k4 \
        low_level_checkpoint=checkpoints/vjepa_ac_tiny data.root=data/robot_logs   # a high-level model

Writes <output_dir>/horizons.md, horizons.json and horizons.png.
"""

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from vjepa_ac.dynamics_eval import evaluate_dynamics, write_report
from vjepa_ac.world_model import checkpoint_frame_stride


@hydra.main(config_path="../configs", config_name="eval_dynamics", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    errors = evaluate_dynamics(cfg)
    print(write_report(cfg, errors, Path(cfg.output_dir), checkpoint_frame_stride(cfg.checkpoint)))


if __name__ == "__main__":
    main()
