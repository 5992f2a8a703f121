"""Plan toward a goal image with MPC: one episode (or a few) of a task with a chosen planner and
world model; writes a video of the camera beside the goal, a plot of energy per step and
results.json, and prints success, steps and planning time per action (configs/plan.yaml)."""
import json
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from planners.factory import load_world_model, make_planner
from planners.media import plot_energies, write_episode_video
from planners.mpc import run_episode

log = logging.getLogger("plan")


@hydra.main(config_path="../configs", config_name="plan", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.torch_threads)
    env_cfg = OmegaConf.to_container(cfg.env, resolve=True)
    env = envs.make_env(env_cfg.pop("task"), **env_cfg)
    world_model = load_world_model(cfg.world_model, env, cfg.random_init)
    planner = make_planner(OmegaConf.to_container(cfg.planner, resolve=True), env.action_space)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    label = "PRIVILEGED oracle (simulator as world model)" if cfg.world_model == "oracle" else f"world model {cfg.world_model}"
    if cfg.world_model == "random":
        label += " (untrained weights: timing only)"
    log.info("task %s, planner %s, %s, %d episode(s) from seed %d", cfg.env.task, cfg.planner.name, label, cfg.episodes, cfg.seed)

    summaries = []
    for i in range(cfg.episodes):
        seed = cfg.seed + i
        result = run_episode(env, world_model, planner, seed, max_steps=cfg.max_steps, execute_steps=cfg.execute_steps,
                             stop_on_success=cfg.stop_on_success, record_frames=i < cfg.videos)
        t = result.time_per_action()
        log.info("seed %d: success at end %s, at any step %s (first at step %s), %d steps, final distances %s, "
                 "planning %.3f s/action (encode %.3f, rollouts %.3f, planner overhead %.3f)",
                 seed, result.success_at_end, result.success_any, result.first_success_step, result.steps,
                 {k: round(v, 4) for k, v in result.final_distances.items()}, t["total_s"], t["encode_s"],
                 t["rollout_s"], t["overhead_s"])
        if i < cfg.videos:
            write_episode_video(result, out / f"episode_{seed}.mp4", fps=int(cfg.env.control_hz), scale=cfg.video_scale)
            plot_energies(result, out / f"energy_{seed}.png", title=f"{cfg.env.task}, {cfg.planner.name}, {label}, seed {seed}")
        summaries.append(result.summary())

    per_action = [s["time_per_action"] for s in summaries]
    totals = {k: float(np.mean([p[k] for p in per_action])) for k in per_action[0]}
    report = {
        "task": cfg.env.task, "planner": cfg.planner.name, "world_model": cfg.world_model,
        "privileged": cfg.world_model == "oracle", "episodes": len(summaries),
        "success_at_end": float(np.mean([s["success_at_end"] for s in summaries])),
        "success_any": float(np.mean([s["success_any"] for s in summaries])),
        "time_per_action": totals, "config": OmegaConf.to_container(cfg, resolve=True), "results": summaries,
    }
    (out / "results.json").write_text(json.dumps(report, indent=1))
    log.info("%s: success at end %.0f%% (%d/%d), at any step %.0f%%; planning %.3f s/action "
             "(encode %.3f, rollouts %.3f, planner overhead %.3f); outputs in %s",
             label, 100 * report["success_at_end"], sum(s["success_at_end"] for s in summaries), len(summaries),
             100 * report["success_any"], totals["total_s"], totals["encode_s"], totals["rollout_s"], totals["overhead_s"], out)


if __name__ == "__main__":
    main()
