"""Rank correlation between goal-image energies and the task's privileged distance on held-out
noisy-expert episodes, for raw pixels, a world model's frozen encoder (L1 between latents) and, when
the world model has one, its learned latent distance (configs/energy_ranking.yaml).

    python scripts/energy_ranking.py
"""
import logging
from functools import partial
from pathlib import Path

import gymnasium as gym
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from envs.rollouts import Episode, record_episode
from planners.energy_ranking import Embed, goal_energies, markdown_table, pixel_embedding, rank_correlation
from vjepa_ac import WorldModel
from vjepa_ac.world_model import FrameLatents
from vjepa_ac.files import write_json, write_text_atomic

log = logging.getLogger("energy_ranking")


def encoder_embedding(world_model: WorldModel, batch_size: int) -> Embed:
    def embed(frames: np.ndarray) -> np.ndarray:
        return np.concatenate([world_model.encode(frames[i:i + batch_size]).float().cpu().numpy()
                               for i in range(0, len(frames), batch_size)])
    return embed


def learned_distance_energies(world_model: WorldModel, batch_size: int):
    """The world model's learned latent distance (control steps) of each frame to the goal image."""
    def energies(frames: np.ndarray, goal: np.ndarray) -> np.ndarray:
        z_goal = world_model.encode(goal[None])
        with torch.inference_mode():
            return np.concatenate([world_model.distance(world_model.encode(frames[i:i + batch_size]), z_goal)
                                   .float().cpu().numpy() for i in range(0, len(frames), batch_size)])
    return energies


def record(env: gym.Env, cfg: DictConfig) -> list[Episode]:
    seeds = range(cfg.seed, cfg.seed + cfg.episodes)
    return [record_episode(env, envs.ExpertWithRandomSteps(env, cfg.expert_noise, cfg.random_action_prob, np.random.default_rng(s)),
                           s, info_keys=("distances",)) for s in seeds]


@hydra.main(config_path="../configs", config_name="energy_ranking", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    # each representation's energy of frames [T, H, W, 3] to a goal image [H, W, 3] -> [T]
    representations = {"pixels": partial(goal_energies, pixel_embedding)}
    if cfg.world_model:
        world_model = WorldModel.from_checkpoint(cfg.world_model, cfg.device)
        name = Path(cfg.world_model).name
        if cfg.pool is not None:
            world_model.latents = FrameLatents(world_model.latents.encoder, world_model.latents.crop_size,
                                               world_model.latents.crop_size // world_model.latents.side, cfg.pool)
            name += f", pool {cfg.pool}"
        representations[f"encoder ({name})"] = partial(goal_energies, encoder_embedding(world_model, cfg.batch_size))
        if world_model.latent_distance is not None:
            representations[f"learned distance ({name})"] = learned_distance_energies(world_model, cfg.batch_size)
    results = {}
    for task in cfg.tasks:
        env_cfg = OmegaConf.to_container(cfg.envs[task], resolve=True)
        env_cfg.pop("task")
        key = cfg.task_distance[task]
        results[task] = {}
        for camera in cfg.cameras:
            env = envs.make_env(task, **{**env_cfg, "camera": camera})
            episodes = record(env, cfg)
            env.close()
            distances = [np.array([d[key] for d in episode.info["distances"]]) for episode in episodes]
            results[task][camera] = {
                name: rank_correlation([energies(e.frames, e.goal_pixels) for e in episodes], distances,
                                       cfg.bootstrap, cfg.seed)
                for name, energies in representations.items()}
            log.info("%s / %s (%s): %s", task, camera, key,
                     ", ".join(f"{name} {r}" for name, r in results[task][camera].items()))

    table = markdown_table(results)
    print(table)
    out = Path(cfg.output_dir)
    header = (f"Spearman rank correlation between the energy to the goal image (L1 between pixels or latents; the "
              f"learned latent distance) and the PRIVILEGED task "
              f"distance, within each episode, mean over episodes [bootstrap 95 % interval]; {cfg.episodes} "
              f"episodes per cell, seeds {cfg.seed}+, expert noise {cfg.expert_noise}, random steps "
              f"{cfg.random_action_prob}.\n\n")
    write_text_atomic(out / "energy_ranking.md", header + table + "\n")
    write_json(out / "energy_ranking.json", {
        "task_distance": {t: cfg.task_distance[t] for t in cfg.tasks},
        "settings": OmegaConf.to_container(cfg, resolve=True),
        "results": {t: {c: {name: vars(r) for name, r in reps.items()} for c, reps in cams.items()}
                    for t, cams in results.items()}})
    log.info("wrote %s", out / "energy_ranking.md")


if __name__ == "__main__":
    main()
