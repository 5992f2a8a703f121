"""Offline world-model report: prediction error by horizon, energy rankings and the argmin regret of
one-step choosers on held-out simulator episodes (vjepa_ac/model_report.py; configs/eval_world_model.yaml).

    python scripts/eval_world_model.py

Writes <output_dir>/model_report.md, model_report.json and model_report.png.
"""
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from vjepa_ac.model_report import evaluate, write_report


@hydra.main(config_path="../configs", config_name="eval_world_model", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    print(write_report(cfg, evaluate(cfg), Path(cfg.output_dir)))


if __name__ == "__main__":
    main()
