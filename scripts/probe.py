"""Frozen-encoder probe (vjepa_ac/probe.py): held-out R^2 of ridge regression from pooled embeddings to
the end-effector and object positions, random init vs pretrained (configs/probe.yaml).

    python scripts/probe.py checkpoint=runs/pretrain_tiny/checkpoint

Writes <output_dir>/probe.json.
"""

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from vjepa_ac.files import write_json
from vjepa_ac.probe import markdown_table, probe_encoders


@hydra.main(config_path="../configs", config_name="probe", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    result = probe_encoders(cfg)
    print("\n" + markdown_table(result, cfg.pool_grid))
    write_json(Path(cfg.output_dir) / "probe.json", result)


if __name__ == "__main__":
    main()
