"""The tiny world model and LeRobot fixture the heads' tests share (goal-state head, subgoal prior,
latent distance): configs composed over the fixture logs on the CPU, and a 2-step fine-tuning run."""
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from vjepa_ac.finetune import finetune

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "lerobot_v30_tiny"
ENCODER = {"patch_size": 8, "crop_size": 32, "frames_per_clip": 2, "tubelet_size": 2, "hidden_size": 48,
           "num_attention_heads": 2, "num_hidden_layers": 1}


def compose_on_fixture(name: str, tmp_path: Path, overrides: dict) -> DictConfig:
    """configs/<name>.yaml on the CPU over the fixture logs, its embedding cache under `tmp_path`, with `overrides`."""
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose(name)
    base = {"device": "cpu", "data": {"root": str(FIXTURE)},
            "cache": {"dir": str(tmp_path / "cache"), "batch_size": 16}}
    return OmegaConf.merge(cfg, base, overrides)


def finetune_tiny_world_model(tmp_path: Path) -> Path:
    """A random tiny encoder and a predictor fine-tuned 2 steps on the fixture logs (windows of 3 frames,
    cached under `tmp_path`): the checkpoint directory."""
    return finetune(compose_on_fixture("finetune", tmp_path, {
        "output_dir": str(tmp_path / "run"), "encoder": {"source": "random", "config": ENCODER},
        "data": {"num_steps": 3}, "cache": {"enabled": True},
        "world_model": {"pool": 2, "predictor": {"dim": 48, "depth": 2, "heads": 2}},
        "train": {"steps": 2, "batch_size": 4, "val_every": 1000, "checkpoint_every": 1000},
        "optim": {"warmup_steps": 1}}))
