"""Throughput measurements: world-model rollouts (scripts/rollout_speed.py) and the data pipeline,
collectors and readers (scripts/data_speed.py). Both print markdown tables as they go."""

import resource
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from envs.speed import calls_per_s
from vjepa_ac.data import RobotLogDataset, VideoClipDataset, sim_collection
from vjepa_ac.data.video_io import worker_context
from vjepa_ac.world_model import WorldModel

# ----------------------------------------------------------------------------- world-model rollouts


def timings(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, best) seconds of `fn` over `repeats` calls after a warm-up. On a shared machine the
    best is the closer estimate of the uncontended cost; the median shows the spread."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def model_spec(cfg: DictConfig, override: dict) -> DictConfig:
    """World-model spec of the configured sizes, with predictor fields (and `pool`) from `override`."""
    predictor = {k: v for k, v in override.items() if k != "pool"}
    return OmegaConf.create({"encoder": OmegaConf.to_container(cfg.model, resolve=True),
                             "pool": override.get("pool", cfg.world_model.pool),
                             "predictor": {**OmegaConf.to_container(cfg.world_model.predictor, resolve=True),
                                           **predictor}})


def rollout_report(wm: WorldModel, label: str, speed: DictConfig) -> None:
    """Print the time to encode one frame and, per (candidates, horizon), one batched `rollout` call."""
    p = wm.predictor.cfg
    params = sum(x.numel() for x in wm.predictor.parameters())
    print(f"\n{label}: latents {p.grid[0]}x{p.grid[1]} tokens x {p.embed_dim}, predictor dim {p.dim} depth {p.depth} "
          f"heads {p.heads} mlp {p.mlp_ratio} ({params / 1e6:.2f} M params), {torch.get_num_threads()} threads")
    frame = np.random.default_rng(0).integers(0, 256, (1, wm.resolution, wm.resolution, 3), dtype=np.uint8)
    med, best = timings(lambda: wm.encode(frame), speed.repeats)
    print(f"encode 1 frame: median {1000 * med:.1f} ms, best {1000 * best:.1f} ms")
    z, state = wm.encode(frame), torch.zeros(1, wm.state_dim)
    print("| candidates | horizon | ms / rollout (median) | ms (best) | candidate-steps / s (median) | (best) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for B in speed.candidates:
        for H in speed.horizons:
            actions = 0.02 * torch.randn(B, H, wm.action_dim)
            med, best = timings(lambda: wm.rollout(z, state, actions), speed.repeats)
            print(f"| {B} | {H} | {1000 * med:.1f} | {1000 * best:.1f} | {B * H / med:.0f} | {B * H / best:.0f} |",
                  flush=True)


def rollout_speed(cfg: DictConfig) -> None:
    """Rollout tables of the configured sizes (random weights) or `cfg.checkpoint`, then of each
    `cfg.speed.sweep` override of the predictor sizes."""
    if cfg.speed.random_weights:
        rollout_report(WorldModel.from_config(model_spec(cfg, {}), seed=cfg.seed), "configured sizes (random weights)",
                       cfg.speed)
    else:
        rollout_report(WorldModel.from_checkpoint(cfg.checkpoint), f"checkpoint {cfg.checkpoint}", cfg.speed)
    for override in cfg.speed.sweep:
        override = OmegaConf.to_container(override, resolve=True)
        rollout_report(WorldModel.from_config(model_spec(cfg, override), seed=cfg.seed), f"sweep {override}", cfg.speed)


# ----------------------------------------------------------------------------- data pipeline


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (collector workers, once reaped)."""
    usages = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(u.ru_utime + u.ru_stime for u in usages)


def timed_collection(name: str, cfg: DictConfig) -> tuple[sim_collection.CollectionStats, float]:
    """Run the collector `name` ("collect_videos" or "collect_robot_logs") in this process; its stats
    and the CPU seconds it took, workers included (they do not depend on what else runs on the machine)."""
    start = _cpu_seconds()
    stats = getattr(sim_collection, name)(cfg)
    return stats, _cpu_seconds() - start


def items_per_second(dataset: Dataset, num_items: int, batch_size: int, num_workers: int) -> float:
    """Items/s through a shuffling DataLoader, timed from the first batch on (worker start-up is not
    throughput), over as many epochs as it takes to reach `num_items`."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        persistent_workers=num_workers > 0, multiprocessing_context=worker_context(num_workers),
                        generator=torch.Generator().manual_seed(0))
    n, start = 0, None
    while n < num_items:
        for batch in loader:
            if start is None:
                start = time.perf_counter()
                continue
            n += len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)
            if n >= num_items:
                break
    return n / (time.perf_counter() - start)


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def data_speed(cfg: DictConfig, collectors: dict[str, DictConfig]) -> None:
    """Print collection frames/s of each collector (`collectors`: name -> its config, overridden by
    `cfg[name]`) with each worker count, beside the renderer's own frames/s; then the readers' items/s
    on the datasets of the first worker count. Datasets go to `cfg.output_dir`/<name>_w<workers>."""
    out = Path(cfg.output_dir).resolve()
    torch.set_num_threads(cfg.threads)
    resolution = collectors["collect_videos"].resolution
    rate = calls_per_s(cfg.task, resolution, cfg.render_steps, 0, lambda env, i, action: env.step(action))
    print(f"renderer alone ({cfg.task}, 1 process): {rate:.1f} frames/s")
    rows = []
    for workers in cfg.workers:
        for name, base in collectors.items():
            target = out / f"{name}_w{workers}"
            shutil.rmtree(target, ignore_errors=True)
            collector_cfg = OmegaConf.merge(base, cfg[name], {"output_dir": str(target), "num_workers": workers})
            stats, cpu = timed_collection(name, collector_cfg)
            rows.append(f"| {name} | {workers} | {stats.frames} | {stats.frames_per_s:.1f} | "
                        f"{stats.frames / cpu:.1f} | {size_mb(target):.2f} |")
    print("\n| collector | workers | frames | frames/s (collection loop, worker start-up included) | "
          "frames per CPU-second | MB on disk |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))

    r = cfg.reader
    videos, logs = out / f"collect_videos_w{cfg.workers[0]}", out / f"collect_robot_logs_w{cfg.workers[0]}"
    start = time.perf_counter()
    clips = VideoClipDataset(videos, frames_per_clip=r.frames_per_clip, frame_step=r.frame_step, resolution=r.resolution)
    clips_init = time.perf_counter() - start
    start = time.perf_counter()
    windows = RobotLogDataset(logs, num_steps=r.num_steps, split="train")
    windows_init = time.perf_counter() - start
    print(f"\nVideoClipDataset: {len(clips)} clips of {r.frames_per_clip} frames (step {r.frame_step}), "
          f"built in {clips_init:.2f} s")
    print(f"RobotLogDataset: {len(windows)} train windows of {r.num_steps} frames from {len(windows.episodes)} "
          f"episodes, built (every video decoded once) in {windows_init:.2f} s")
    print("\n| reader | DataLoader workers | batch | items/s |")
    print("|---|---|---|---|")
    for name, dataset in (("VideoClipDataset", clips), ("RobotLogDataset", windows)):
        for num_workers in r.num_workers:
            rate = items_per_second(dataset, r.num_items, r.batch_size, num_workers)
            print(f"| {name} | {num_workers} | {r.batch_size} | {rate:.1f} |")
