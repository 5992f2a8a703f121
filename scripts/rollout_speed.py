"""Rollout throughput of the world model on this CPU: what bounds planning cost (configs/eval_dynamics.yaml).

    flock /tmp/vjepa_heavy.lock python scripts/rollout_speed.py                 # random weights, tiny sizes
    python scripts/rollout_speed.py speed.random_weights=false checkpoint=runs/finetune/checkpoint
    python scripts/rollout_speed.py 'speed.sweep=[{dim:64,depth:3},{pool:4}]'   # compare predictor sizes

Prints, per (candidates B, horizon H), the time of one batched `rollout` call and candidate-steps/s
(B * H / time), plus the time to encode one frame. A CEM iteration is one such call, so a plan of I
iterations costs about encode + I * rollout time.
"""

import time

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vjepa_ac import WorldModel


def timings(fn, repeats: int) -> tuple[float, float]:
    """(median, best) seconds of `fn` over `repeats` calls after a warm-up. On a shared machine the
    best is the closer estimate of the uncontended cost; the median shows the spread."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def spec_of(cfg: DictConfig, override: dict) -> DictConfig:
    predictor = {k: v for k, v in override.items() if k != "pool"}
    return OmegaConf.create({"encoder": OmegaConf.to_container(cfg.model, resolve=True),
                             "pool": override.get("pool", cfg.world_model.pool),
                             "predictor": {**OmegaConf.to_container(cfg.world_model.predictor, resolve=True),
                                           **predictor}})


def report(wm: WorldModel, label: str, cfg: DictConfig) -> None:
    p = wm.predictor.cfg
    params = sum(x.numel() for x in wm.predictor.parameters())
    print(f"\n{label}: latents {p.grid[0]}x{p.grid[1]} tokens x {p.embed_dim}, predictor dim {p.dim} depth {p.depth} "
          f"heads {p.heads} mlp {p.mlp_ratio} ({params / 1e6:.2f} M params), {torch.get_num_threads()} threads")
    frame = np.random.default_rng(0).integers(0, 256, (1, wm.resolution, wm.resolution, 3), dtype=np.uint8)
    med, best = timings(lambda: wm.encode(frame), cfg.speed.repeats)
    print(f"encode 1 frame: median {1000 * med:.1f} ms, best {1000 * best:.1f} ms")
    z, state = wm.encode(frame), torch.zeros(1, wm.state_dim)
    print("| candidates | horizon | ms / rollout (median) | ms (best) | candidate-steps / s (median) | (best) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for B in cfg.speed.candidates:
        for H in cfg.speed.horizons:
            actions = 0.02 * torch.randn(B, H, wm.action_dim)
            med, best = timings(lambda: wm.rollout(z, state, actions), cfg.speed.repeats)
            print(f"| {B} | {H} | {1000 * med:.1f} | {1000 * best:.1f} | {B * H / med:.0f} | {B * H / best:.0f} |",
                  flush=True)


@hydra.main(config_path="../configs", config_name="eval_dynamics", version_base=None)
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    if cfg.speed.random_weights:
        report(WorldModel.from_config(spec_of(cfg, {}), seed=cfg.seed), "configured sizes (random weights)", cfg)
    else:
        report(WorldModel.from_checkpoint(cfg.checkpoint), f"checkpoint {cfg.checkpoint}", cfg)
    for override in cfg.speed.sweep:
        override = OmegaConf.to_container(override, resolve=True)
        report(WorldModel.from_config(spec_of(cfg, override), seed=cfg.seed), f"sweep {override}", cfg)


if __name__ == "__main__":
    main()
