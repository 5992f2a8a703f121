"""Does the world model learn dynamics? L1 prediction error on held-out episodes, by horizon.

From the first frame of each held-out window the model rolls the window's real actions forward
1..H steps (state integrated as state + action, as in planning). Compared, at every horizon, with the
encoder's latents of the real frames:
  (a) predictor:          the world model's rollout;
  (b) copy last:          the first frame's latents, unchanged (a model that predicts no motion);
  (c) shuffled actions:   the world model fed another window's actions (do actions matter?).

A high-level model (fine-tuned on frames k control steps apart, `frame_stride` = k) is evaluated per
macro-action: windows of horizon x k + 1 control steps, its k-step summed actions, the real frame at
every k-th step; with `low_level_checkpoint` (a per-step model over the same encoder) also
  (d) low level, k steps:  that model rolled through all k control steps of each macro-action
(does one k-step jump predict better than k compounding single steps?).
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
LOW_LEVEL = "low level, k steps"


@torch.inference_mode()
def horizon_errors(wm: WorldModel, loader: DataLoader, seed: int, low: WorldModel | None = None) -> dict[str, np.ndarray]:
    """Per-window mean L1 error `[windows, H]` for each method. Windows are read at stride 1; a model
    with frame_stride k > 1 predicts every k-th frame from the k-step summed actions (and `low`, if
    given, is rolled through every control step)."""
    g = torch.Generator().manual_seed(seed)
    k = wm.frame_stride
    errors = {m: [] for m in METHODS + ((LOW_LEVEL,) if low is not None else ())}
    for frames, states, actions in loader:
        z = wm.latents(frames.to(wm.device))  # [B, T, N, D]
        target, z0, s0 = z[:, k::k], z[:, 0], states[:, 0]
        macros = actions.reshape(len(actions), -1, k, actions.shape[-1]).sum(2)  # [B, H, A]
        shuffled = macros[torch.randperm(len(macros), generator=g)]
        preds = {"predictor": wm.rollout(z0, s0, macros),
                 "copy last": z0.unsqueeze(1).expand_as(target),
                 "shuffled actions": wm.rollout(z0, s0, shuffled)}
        if low is not None:
            preds[LOW_LEVEL] = low.rollout(z0, s0, actions)[:, k - 1::k]
        for m, p in preds.items():
            errors[m].append((p - target).abs().mean(dim=(2, 3)).cpu())
    return {m: torch.cat(e).numpy() for m, e in errors.items()}


def evaluate_dynamics(cfg: DictConfig) -> dict[str, np.ndarray]:
    """Errors `[windows, eval.horizon]` per method on up to `eval.max_windows` windows of `eval.split`,
    picked at random (seeded by `eval.shuffle_seed`)."""
    wm = WorldModel.from_checkpoint(cfg.checkpoint, device=cfg.device)
    low = None
    if cfg.get("low_level_checkpoint"):
        low = WorldModel.from_checkpoint(cfg.low_level_checkpoint, device=cfg.device)
        if low.frame_stride != 1 or not wm.shares_encoder(low):
            raise ValueError(f"low_level_checkpoint {cfg.low_level_checkpoint} must be a per-step model over the "
                             f"encoder of {cfg.checkpoint}")
    data_cfg = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))  # not struct: reader keys may be new
    data_cfg.num_steps = cfg.eval.horizon * wm.frame_stride + 1
    data_cfg.reader.frame_stride = 1  # every control step; a high-level model sees every k-th frame
    dataset = robot_log_dataset(data_cfg, cfg.eval.split, wm.predictor.cfg, wm.resolution)
    rng = np.random.default_rng(cfg.eval.shuffle_seed)
    picked = np.sort(rng.permutation(len(dataset))[: cfg.eval.max_windows])
    loader = DataLoader(Subset(dataset, picked.tolist()), batch_size=cfg.eval.batch_size, shuffle=False)
    return horizon_errors(wm, loader, cfg.eval.shuffle_seed, low)


def markdown_table(errors: dict[str, np.ndarray], title: str) -> str:
    """Mean error ± 95% CI per horizon (rows) and method (columns)."""
    n, horizon = next(iter(errors.values())).shape
    lines = [f"{title} (mean ± 95% CI)", "", "| horizon | " + " | ".join(errors) + " |",
             "|---:|" + "---:|" * len(errors)]
    for h in range(horizon):
        cells = [f"{e[:, h].mean():.4f} ± {1.96 * e[:, h].std() / np.sqrt(n):.4f}" for e in errors.values()]
        lines.append(f"| {h + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(errors: dict[str, np.ndarray], path: Path, title: str, unit: str = "control steps") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = np.arange(1, next(iter(errors.values())).shape[1] + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, e in errors.items():
        sem = e.std(0) / np.sqrt(len(e))
        ax.errorbar(horizons, e.mean(0), yerr=1.96 * sem, marker="o", capsize=3, label=m)
    ax.set(xlabel=f"horizon ({unit})", ylabel="L1 error of predicted latents", title=title, xticks=horizons)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(cfg: DictConfig, errors: dict[str, np.ndarray], out: Path, frame_stride: int = 1) -> str:
    """Write `out`/horizons.md, horizons.json and horizons.png; return the markdown table (horizons
    in macro-actions of `frame_stride` control steps for a high-level model)."""
    n, k = len(next(iter(errors.values()))), frame_stride
    unit = "control steps" if k == 1 else f"macro-actions of {k} control steps"
    table = markdown_table(errors, f"L1 error of predicted latents, horizon in {unit}, {n} windows of split "
                                   f"'{cfg.eval.split}' from {cfg.data.root}, checkpoint {cfg.checkpoint}")
    write_text_atomic(out / "horizons.md", table + "\n")
    write_json(out / "horizons.json", {
        "checkpoint": str(cfg.checkpoint), "data": str(cfg.data.root), "split": cfg.eval.split, "windows": n,
        "mean_l1": {m: e.mean(0).round(6).tolist() for m, e in errors.items()}})
    plot(errors, out / "horizons.png", f"held-out dynamics ({n} windows)", unit)
    return table
