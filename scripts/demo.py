"""Run each task's scripted expert once and write an mp4 per task beside its goal image (configs/demo.yaml).

    python scripts/demo.py
"""

import logging
from pathlib import Path

import hydra
import imageio.v3 as iio
import numpy as np
from omegaconf import DictConfig

import envs
from vjepa_ac.data.video_io import write_video

log = logging.getLogger(__name__)


def run_episode(task: str, resolution: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Frames of one expert episode, its goal image, and whether it ended in success."""
    env = envs.make_env(task, resolution=resolution)
    obs, info = env.reset(seed=seed)
    expert = envs.make_expert(env, noise=noise, rng=np.random.default_rng(seed))
    frames, done = [obs["pixels"]], False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act())
        frames.append(obs["pixels"])
        done = terminated or truncated
    env.close()
    return np.stack(frames), info["goal_pixels"], info["is_success"]


@hydra.main(config_path="../configs", config_name="demo", version_base=None)
def main(cfg: DictConfig) -> None:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for task in cfg.tasks:
        frames, goal, success = run_episode(task, cfg.resolution, cfg.seed, cfg.noise)
        fps = envs.load_task_config(task)["control_hz"]
        write_video(out / f"{task}.mp4", frames, fps=fps)
        iio.imwrite(out / f"{task}_goal.png", goal)
        log.info("%-18s %d steps, success=%s -> %s", task, len(frames) - 1, success, out / f"{task}.mp4")


if __name__ == "__main__":
    main()
