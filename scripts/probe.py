"""Frozen-encoder probe: does pretraining put robot and object positions into the embeddings?

Renders held-out episodes of every task (noisy scripted expert, env seeds far from the corpus),
encodes each frame with a frozen encoder (a single frame is a 2-frame tubelet of itself), pools the
tokens into a coarse spatial grid, and fits ridge regression to the end-effector and object
positions (privileged simulator state, used here for evaluation only). Prints R^2 on held-out
episodes for a randomly initialised encoder and for the pretrained one.

    python scripts/probe.py checkpoint=runs/pretrain_tiny/checkpoint
"""

import json
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

import envs
from vjepa_ac.checkpoint import load_config
from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.models import VideoEncoder
from vjepa_ac.models.encoder import vjepa2_config


def render_episodes(cfg: DictConfig) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """frames uint8 [M, H, W, 3], labels {"ee_pos", "object_pos"} [M, 3], episode id [M]."""
    frames, labels, episode = [], {"ee_pos": [], "object_pos": []}, []
    runs = [(task, e) for task in cfg.tasks for e in range(cfg.episodes_per_task)]
    for i, (task, e) in enumerate(tqdm(runs, desc="render probe episodes")):
        env = envs.make_env(task, resolution=cfg.resolution)
        obs, info = env.reset(seed=cfg.seed + i)
        expert = envs.make_expert(env, noise=cfg.expert_noise, rng=np.random.default_rng(cfg.seed + i))
        for _ in range(cfg.steps_per_episode):
            frames.append(obs["pixels"])
            for k in labels:
                labels[k].append(np.asarray(info[k], dtype=np.float64))
            episode.append(i)
            obs, _, terminated, truncated, info = env.step(expert.act())
            if terminated or truncated:
                break
        env.close()
    return np.stack(frames), {k: np.stack(v) for k, v in labels.items()}, np.array(episode)


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
    """Held-out R^2 (averaged over y's columns); alpha picked on a split of the fitting episodes."""
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


@hydra.main(config_path="../configs", config_name="probe", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
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
    results = {}
    for name, encoder in encoders.items():
        feats = pooled_features(encoder, frames, cfg.pool_grid)
        results[name] = {k: ridge_r2(feats, v, fit, list(cfg.ridge_alphas)) for k, v in labels.items()}
    print(f"\nheld-out R^2 of ridge regression on {cfg.pool_grid}x{cfg.pool_grid}-pooled frozen embeddings")
    print(f"| encoder | end-effector position | object position |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['ee_pos']:.3f} | {r['object_pos']:.3f} |")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps({"checkpoint": str(ckpt), "frames": len(frames), "r2": results}, indent=2))


if __name__ == "__main__":
    main()
