"""Collect robot logs (noisy scripted experts + random exploration, every task) as a
LeRobotDataset v3.0 (configs/collect_robot_logs.yaml).

    python scripts/collect_robot_logs.py out_dir=data/robot_logs episodes_per_task=50 num_workers=2
"""

import logging
import time
from functools import partial

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs
from vjepa_ac.data.lerobot_writer import LeRobotWriter, vector_feature, video_feature
from vjepa_ac.data.sim_collection import EpisodeJob, episode_job, parallel_map

log = logging.getLogger(__name__)

STATE_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper"]


def control_rate(cfg: DictConfig) -> int:
    rates = {t: envs.load_task_config(t, **OmegaConf.to_container(cfg.env_overrides))["control_hz"] for t in cfg.tasks}
    if len(set(rates.values())) != 1:
        raise ValueError(f"tasks must share one control rate for one dataset fps, got {rates}")
    return int(next(iter(rates.values())))


@hydra.main(config_path="../configs", config_name="collect_robot_logs", version_base=None)
def main(cfg: DictConfig) -> None:
    missing = [t for t in cfg.tasks if t not in cfg.task_descriptions]
    if missing:
        raise ValueError(f"task_descriptions lacks {missing}")
    fps = control_rate(cfg)
    features = {cfg.camera_key: video_feature(cfg.resolution, cfg.resolution, fps),
                "observation.state": vector_feature(STATE_NAMES), "action": vector_feature(ACTION_NAMES)}
    writer = LeRobotWriter(cfg.out_dir, fps, features, robot_type=cfg.robot_type,
                           episodes_per_file=cfg.episodes_per_file)
    total = len(cfg.tasks) * cfg.episodes_per_task
    done = writer.num_episodes
    log.info("%d episodes in %s: %d already written, %d to collect with %d workers", total, cfg.out_dir, done,
             max(total - done, 0), cfg.num_workers)
    jobs = [EpisodeJob(index=i, task=cfg.tasks[i % len(cfg.tasks)], seed=cfg.seed,
                       random_fraction=cfg.random_fraction, noise_levels=tuple(cfg.noise_levels))
            for i in range(done, total)]
    make_env = partial(envs.make_env, resolution=cfg.resolution, **OmegaConf.to_container(cfg.env_overrides))
    start, frames, successes, retried = time.perf_counter(), 0, 0, 0
    results = parallel_map(episode_job, jobs, cfg.num_workers, make_env, envs.make_expert)
    for episode, meta in tqdm(results, total=len(jobs), desc="episodes", unit="episode"):
        writer.add_episode({cfg.camera_key: episode.frames},
                           {"observation.state": episode.states, "action": episode.actions},
                           task=cfg.task_descriptions[meta["env_task"]], metadata=meta)
        frames += len(episode.frames)
        successes += meta["success"]
        retried += meta["attempts"] > 1
    writer.close()
    seconds = time.perf_counter() - start
    log.info("wrote %d episodes, %d frames in %.1f s (%.1f frames/s); %d successful; %d re-run after an "
             "unstable simulation", len(jobs), frames, seconds, frames / max(seconds, 1e-9), successes, retried)


if __name__ == "__main__":
    main()
