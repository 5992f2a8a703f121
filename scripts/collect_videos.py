"""Render an unlabeled video corpus from the sim (configs/collect_videos.yaml).

    python scripts/collect_videos.py out_dir=data/videos num_videos=200 num_workers=2
"""

import logging
import time
from functools import partial
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs
from vjepa_ac.data.sim_collection import VideoJob, parallel_map, video_job

log = logging.getLogger(__name__)


def video_jobs(cfg: DictConfig) -> list[VideoJob]:
    """One job per video of the corpus; each carries its own seed and output path."""
    fps = envs.load_task_config(cfg.tasks[0])["control_hz"]
    out = Path(cfg.out_dir)
    return [VideoJob(index=i, task=cfg.tasks[i % len(cfg.tasks)], seed=cfg.seed, path=str(out / f"video_{i:06d}.mp4"),
                     num_frames=cfg.frames_per_video, fps=fps, expert_prob=cfg.expert_prob,
                     noise_levels=tuple(cfg.noise_levels), segment_steps=tuple(cfg.segment_steps),
                     light_scale=tuple(cfg.light_scale), camera_shift=cfg.camera_shift)
            for i in range(cfg.num_videos)]


@hydra.main(config_path="../configs", config_name="collect_videos", version_base=None)
def main(cfg: DictConfig) -> None:
    jobs = video_jobs(cfg)
    todo = [job for job in jobs if not Path(job.path).exists()]
    log.info("%d videos in %s: %d already written, %d to render with %d workers", len(jobs), cfg.out_dir,
             len(jobs) - len(todo), len(todo), cfg.num_workers)
    make_env = partial(envs.make_env, resolution=cfg.resolution, **OmegaConf.to_container(cfg.env_overrides))
    start, frames = time.perf_counter(), 0
    results = parallel_map(video_job, todo, cfg.num_workers, make_env, envs.make_expert)
    for n in tqdm(results, total=len(todo), desc="videos", unit="video"):
        frames += n
    seconds = time.perf_counter() - start
    log.info("wrote %d videos, %d frames in %.1f s (%.1f frames/s)", len(todo), frames, seconds,
             frames / max(seconds, 1e-9))


if __name__ == "__main__":
    main()
