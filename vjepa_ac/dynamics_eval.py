"""Does the world model learn dynamics? L1 prediction error on held-out episodes, by horizon.

From the first frame of each held-out window the model rolls the window's real actions forward
1..H steps (state integrated as state + action, as in planning). Compared, at every horizon, with the
encoder's latents of the real frames:
  (a) predictor:          the world model's rollout;
  (b) copy last:          the first frame's latents, unchanged (a model that predicts no motion);
  (c) shuffled actions:   the world model fed another window's actions (do actions matter?).
"""

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Subset

from vjepa_ac.files import write_json, write_text_atomic
from vjepa_ac.finetune import robot_log_dataset
from vjepa_ac.world_model import WorldModel

METHODS = ("predictor", "copy last", "shuffled actions")


@torch.inference_mode()
def horizon_errors(wm: WorldModel, loader: DataLoader, seed: int) -> dict[str, np.ndarray]:
    """Per-window mean L1 error `[windows, H]` for each method."""
    g = torch.Generator().manual_seed(seed)
    errors = {m: [] for m in METHODS}
    for frames, states, actions in loader:
        z = wm.latents(frames.to(wm.device))  # [B, T, N, D]
        target, z0, s0 = z[:, 1:], z[:, 0], states[:, 0]
        shuffled = actions[torch.randperm(len(actions), generator=g)]
        preds = {"predictor": wm.rollout(z0, s0, actions),
                 "copy last": z0.unsqueeze(1).expand_as(target),
                 "shuffled actions": wm.rollout(z0, s0, shuffled)}
        for m, p in preds.items():
            errors[m].append((p - target).abs().mean(dim=(2, 3)).cpu())
    return {m: torch.cat(e).numpy() for m, e in errors.items()}


def evaluate_dynamics(cfg: DictConfig) -> dict[str, np.ndarray]:
    """Errors `[windows, eval.horizon]` per method on up to `eval.max_windows` windows of `eval.split`,
    picked at random (seeded by `eval.shuffle_seed`)."""
    wm = WorldModel.from_checkpoint(cfg.checkpoint, device=cfg.device)
    data_cfg = OmegaConf.merge(cfg.data, {"num_steps": cfg.eval.horizon + 1})
    dataset = robot_log_dataset(data_cfg, cfg.eval.split, wm.predictor.cfg, wm.resolution)
    rng = np.random.default_rng(cfg.eval.shuffle_seed)
    picked = np.sort(rng.permutation(len(dataset))[: cfg.eval.max_windows])
    loader = DataLoader(Subset(dataset, picked.tolist()), batch_size=cfg.eval.batch_size, shuffle=False)
    return horizon_errors(wm, loader, cfg.eval.shuffle_seed)


def markdown_table(errors: dict[str, np.ndarray], title: str) -> str:
    """Mean error ± 95% CI per horizon (rows) and method (columns)."""
    n, horizon = next(iter(errors.values())).shape
    lines = [f"{title} (mean ± 95% CI)", "", "| horizon | " + " | ".join(errors) + " |",
             "|---:|" + "---:|" * len(errors)]
    for h in range(horizon):
        cells = [f"{e[:, h].mean():.4f} ± {1.96 * e[:, h].std() / np.sqrt(n):.4f}" for e in errors.values()]
        lines.append(f"| {h + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(errors: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = np.arange(1, next(iter(errors.values())).shape[1] + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, e in errors.items():
        sem = e.std(0) / np.sqrt(len(e))
        ax.errorbar(horizons, e.mean(0), yerr=1.96 * sem, marker="o", capsize=3, label=m)
    ax.set(xlabel="horizon (control steps)", ylabel="L1 error of predicted latents", title=title, xticks=horizons)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(cfg: DictConfig, errors: dict[str, np.ndarray], out: Path) -> str:
    """Write `out`/horizons.md, horizons.json and horizons.png; return the markdown table."""
    n = len(next(iter(errors.values())))
    table = markdown_table(errors, f"L1 error of predicted latents, {n} windows of split '{cfg.eval.split}' from "
                                   f"{cfg.data.root}, checkpoint {cfg.checkpoint}")
    write_text_atomic(out / "horizons.md", table + "\n")
    write_json(out / "horizons.json", {
        "checkpoint": str(cfg.checkpoint), "data": str(cfg.data.root), "split": cfg.eval.split, "windows": n,
        "mean_l1": {m: e.mean(0).round(6).tolist() for m, e in errors.items()}})
    plot(errors, out / "horizons.png", f"held-out dynamics ({n} windows)")
    return table
