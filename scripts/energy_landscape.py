"""Energy landscape over two action dimensions for one frame and goal, with the true best action
(found by the PRIVILEGED simulator) marked, as in the V-JEPA 2 paper (configs/energy_landscape.yaml)."""
import logging
from pathlib import Path

import hydra
import matplotlib
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from planners.factory import ORACLE, load_world_model
from planners.landscape import energy_grid
from vjepa_ac.files import write_json
from vjepa_ac.state_action import ACTION_NAMES, UNITS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger("energy_landscape")


def landscape(world_model, obs, goal, cfg, low, high):
    z_now = world_model.encode(obs["pixels"][None])
    z_goal = world_model.encode_goal(goal[None])
    state = torch.as_tensor(obs["state"])[None]
    return energy_grid(world_model, z_now, state, z_goal, cfg.dims, low, high, cfg.grid_size, cfg.batch_size)


@hydra.main(config_path="../configs", config_name="energy_landscape", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    env_cfg = OmegaConf.to_container(cfg.env, resolve=True)
    env = envs.make_env(env_cfg.pop("task"), **env_cfg)
    low, high = env.action_space.low, env.action_space.high
    obs, info = env.reset(seed=cfg.seed)
    goal = info["goal_pixels"]

    panels = {}
    if cfg.world_model != ORACLE:
        world_model = load_world_model(cfg.world_model, env, cfg.device)
        panels[f"world model: {cfg.world_model}"] = landscape(world_model, obs, goal, cfg, low, high)
    truth, xs, ys = landscape(load_world_model(ORACLE, env), obs, goal, cfg, low, high)
    panels["PRIVILEGED simulator (ground truth)"] = (truth, xs, ys)
    best = np.unravel_index(truth.argmin(), truth.shape)
    true_best = np.array([xs[best[0]], ys[best[1]]])

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"{ACTION_NAMES[d]} ({UNITS[d]})" for d in cfg.dims]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.3), squeeze=False)
    report = {"task": cfg.env.task, "seed": cfg.seed, "dims": list(cfg.dims), "true_best": true_best.tolist(), "panels": {}}
    for ax, (title, (energies, xs, ys)) in zip(axes[0], panels.items()):
        i, j = np.unravel_index(energies.argmin(), energies.shape)
        chosen = np.array([xs[i], ys[j]])
        cosine = float(chosen @ true_best / (np.linalg.norm(chosen) * np.linalg.norm(true_best) + 1e-12))
        dx, dy = (xs[1] - xs[0]) / 2, (ys[1] - ys[0]) / 2  # cell centres on the grid values
        extent = [xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy]
        image = ax.imshow(energies.T, origin="lower", extent=extent, aspect="auto", cmap="viridis")
        fig.colorbar(image, ax=ax, label="energy (L1)")
        ax.plot(*chosen, "wx", markersize=10, mew=2, label="energy minimum")
        ax.plot(*true_best, "r*", markersize=14, label="true best (privileged)")
        ax.annotate("", xy=true_best, xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": "red"})
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="best", framealpha=0.6)
        report["panels"][title] = {"minimum": chosen.tolist(), "cosine_to_true_best": cosine}
        log.info("%s: energy minimum at %s = %s, true best %s, cosine %.3f", title, names, chosen.round(4), true_best.round(4), cosine)
    fig.suptitle(f"{cfg.env.task}, seed {cfg.seed}: energy of one-step actions")
    fig.tight_layout()
    fig.savefig(out / "energy_landscape.png", dpi=120)
    write_json(out / "energy_landscape.json", report)
    log.info("wrote %s", out / "energy_landscape.png")


if __name__ == "__main__":
    main()
