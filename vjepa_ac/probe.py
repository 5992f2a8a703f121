"""Frozen-encoder probe: does pretraining put robot and object positions into the embeddings?

Held-out episodes of every task (noisy scripted expert, env seeds far from the corpus) are rendered,
each frame is encoded by a frozen encoder (a single frame is a 2-frame tubelet of itself), the tokens
are pooled into a coarse spatial grid, and ridge regression is fitted to the end-effector and object
positions (privileged simulator state, used here for evaluation only). The figure is R^2 on
held-out episodes, for a randomly initialised encoder and for the pretrained one.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

import envs
from envs.rollouts import expert_episode
from vjepa_ac.checkpoint import load_config
from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.models import VideoEncoder
from vjepa_ac.models.encoder import vjepa2_config

LABELS = ("ee_pos", "object_pos")  # env info keys regressed from the embeddings


def render_episodes(cfg: DictConfig) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """frames uint8 [M, H, W, 3], labels {"ee_pos", "object_pos"} float64 [M, 3], episode id [M].
    Each episode gives its first `steps_per_episode` frames (the frame after the last action is left out)."""
    frames, labels, episode = [], {k: [] for k in LABELS}, []
    runs = [(task, e) for task in cfg.tasks for e in range(cfg.episodes_per_task)]
    for i, (task, _) in enumerate(tqdm(runs, desc="render probe episodes")):
        env = envs.make_env(task, resolution=cfg.resolution)
        ep = expert_episode(env, cfg.seed + i, cfg.expert_noise, max_steps=cfg.steps_per_episode, info_keys=LABELS)
        env.close()
        frames.append(ep.frames[:-1])
        for k in LABELS:
            labels[k].append(ep.info[k][:-1].astype(np.float64))
        episode.append(np.full(len(ep.frames) - 1, i))
    return np.concatenate(frames), {k: np.concatenate(v) for k, v in labels.items()}, np.concatenate(episode)


@torch.no_grad()
def pooled_features(encoder: VideoEncoder, frames: np.ndarray, grid: int, batch: int = 64) -> np.ndarray:
    """Embeddings averaged over time and into grid x grid spatial cells: [M, grid * grid * D]."""
    encoder.eval()
    side = encoder.config.crop_size // encoder.config.patch_size
    out = []
    for i in range(0, len(frames), batch):
        x = normalize_frames(frames[i:i + batch])[:, None]  # [B, 1, C, H, W]
        z = encoder(x)  # [B, side * side, D] (one tubelet)
        z = z.view(len(x), side, side, -1).permute(0, 3, 1, 2)
        out.append(F.adaptive_avg_pool2d(z, grid).flatten(1).numpy())
    return np.concatenate(out)


def ridge_r2(x: np.ndarray, y: np.ndarray, fit: np.ndarray, alphas: list[float]) -> float:
    """Held-out R^2 (averaged over y's columns) of rows ~fit; alpha picked on a split of the fitting rows."""
    mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-6
    x = (x - mu) / sd

    def solve(xa, ya, alpha):  # dual ridge: cheap when features outnumber samples
        ym = ya.mean(0)
        k = xa @ xa.T
        coef = np.linalg.solve(k + alpha * np.eye(len(xa)), ya - ym)
        return lambda xb: xb @ (xa.T @ coef) + ym

    def r2(pred, yb):
        return float(np.mean(1 - ((yb - pred) ** 2).sum(0) / ((yb - yb.mean(0)) ** 2).sum(0)))

    idx = np.flatnonzero(fit)
    inner = idx[: int(0.7 * len(idx))]  # episodes are contiguous: an episode-wise split
    val = idx[int(0.7 * len(idx)):]
    best = max(alphas, key=lambda a: r2(solve(x[inner], y[inner], a)(x[val]), y[val]))
    test = ~fit
    return r2(solve(x[fit], y[fit], best)(x[test]), y[test])


def probe_encoders(cfg: DictConfig) -> dict:
    """R^2 per encoder and label: {"checkpoint", "frames", "r2": {encoder: {label: R^2}}}. Without a
    checkpoint at `cfg.checkpoint`, only the random-init encoder (of `cfg.model`'s sizes) is probed."""
    frames, labels, episode = render_episodes(cfg)
    fit = episode % 2 == 0
    print(f"{len(frames)} frames from {episode.max() + 1} episodes ({fit.sum()} fit / {(~fit).sum()} held out)")
    ckpt = Path(cfg.checkpoint)
    run_cfg = load_config(ckpt) if ckpt.exists() else {"model": cfg.model, "seed": 0}
    torch.manual_seed(run_cfg["seed"])  # the same draw as the pretraining run's initial encoder weights
    encoders = {"random init": VideoEncoder(vjepa2_config(run_cfg["model"]))}
    if ckpt.exists():
        for weights in cfg.weights:
            encoders[f"pretrained ({weights})"] = VideoEncoder.from_checkpoint(ckpt, weights)
    else:
        print(f"no checkpoint at {ckpt}: probing the random-init encoder only")
    r2 = {}
    for name, encoder in encoders.items():
        feats = pooled_features(encoder, frames, cfg.pool_grid)
        r2[name] = {k: ridge_r2(feats, v, fit, list(cfg.ridge_alphas)) for k, v in labels.items()}
    return {"checkpoint": str(ckpt), "frames": len(frames), "r2": r2}


def markdown_table(result: dict, pool_grid: int) -> str:
    lines = [f"held-out R^2 of ridge regression on {pool_grid}x{pool_grid}-pooled frozen embeddings",
             "| encoder | end-effector position | object position |", "|---|---|---|"]
    lines += [f"| {name} | {r['ee_pos']:.3f} | {r['object_pos']:.3f} |" for name, r in result["r2"].items()]
    return "\n".join(lines)
