"""Does the world model learn dynamics? L1 prediction error on held-out episodes, by horizon, against
copy-last and shuffled-actions baselines (vjepa_ac/dynamics_eval.py; configs/eval_dynamics.yaml).

    python scripts/eval_dynamics.py checkpoint=runs/finetune/checkpoint data.root=data/robot_logs

Writes <output_dir>/horizons.md, horizons.json and horizons.png.
"""

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from vjepa_ac.dynamics_eval import evaluate_dynamics, write_report


@hydra.main(config_path="../configs", config_name="eval_dynamics", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    print(write_report(cfg, evaluate_dynamics(cfg), Path(cfg.output_dir)))


if __name__ == "__main__":
    main()
