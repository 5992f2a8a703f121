"""Run each task's scripted expert once and write an mp4 per task beside its goal image (configs/demo.yaml).

    python scripts/demo.py
"""

import logging
from pathlib import Path

import hydra
import imageio.v3 as iio
from omegaconf import DictConfig

import envs
from envs.rollouts import expert_episode
from vjepa_ac.data.video_io import write_video

log = logging.getLogger(__name__)


@hydra.main(config_path="../configs", config_name="demo", version_base=None)
def main(cfg: DictConfig) -> None:
    out = Path(cfg.output_dir)
    for task in cfg.tasks:
        env = envs.make_env(task, resolution=cfg.resolution)
        episode = expert_episode(env, cfg.seed, cfg.noise)
        env.close()
        write_video(out / f"{task}.mp4", episode.frames, fps=envs.load_task_config(task)["control_hz"])
        iio.imwrite(out / f"{task}_goal.png", episode.goal_pixels)
        log.info("%-18s %d steps, success=%s -> %s", task, len(episode.frames) - 1, episode.success,
                 out / f"{task}.mp4")


if __name__ == "__main__":
    main()
