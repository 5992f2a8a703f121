"""Data pipeline throughput (configs/data_speed.yaml): collection frames/s of both collectors with
1 and 2 workers against the renderer's own frames/s, the readers' items/s, and dataset sizes on disk.

    flock /tmp/vjepa_heavy.lock python scripts/data_speed.py 2>&1 | tee outputs/data_speed.log
"""

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

import envs
from vjepa_ac.data import RobotLogDataset, VideoClipDataset

ROOT = Path(__file__).resolve().parents[1]
RATE = re.compile(r"wrote \d+ \w+, (\d+) frames in ([\d.]+) s")


def collect(script: str, out: Path, workers: int, overrides: list[str]) -> tuple[int, float, float, float]:
    """Run a collector script; (frames, seconds of its collection loop, wall seconds with start-up,
    CPU seconds of it and its workers). CPU seconds do not depend on what else runs on the machine."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, str(ROOT / "scripts" / f"{script}.py"), f"out_dir={out}", f"num_workers={workers}",
           f"hydra.run.dir={out}_hydra", *overrides]
    start, cpu_start = time.perf_counter(), _children_cpu()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    match = RATE.search(result.stdout + result.stderr)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return int(match.group(1)), float(match.group(2)), wall, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children and their reaped workers
    return usage.ru_utime + usage.ru_stime


def render_rate(task: str, steps: int) -> float:
    """Env step + render frames/s with smooth random actions, one process (the collectors' ceiling)."""
    env = envs.make_env(task)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, 7).astype(np.float32) * env.action_space.high)
    return steps / (time.perf_counter() - start)


def items_per_second(dataset, num_items: int, batch_size: int, num_workers: int) -> float:
    """Items/s through a shuffling DataLoader, timed from the first batch on (worker start-up is not
    throughput), over as many epochs as it takes to reach `num_items`."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(0))
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


@hydra.main(config_path="../configs", config_name="data_speed", version_base=None)
def main(cfg: DictConfig) -> None:
    out = Path(cfg.out_dir).resolve()
    shutil.rmtree(out, ignore_errors=True)
    torch.set_num_threads(1)
    print(f"renderer alone ({cfg.task}, 1 process): {render_rate(cfg.task, cfg.render_steps):.1f} frames/s")
    rows = []
    for workers in cfg.workers:
        for script, overrides in (
            ("collect_videos", [f"num_videos={cfg.videos.num_videos}", f"frames_per_video={cfg.videos.frames_per_video}"]),
            ("collect_robot_logs", [f"episodes_per_task={cfg.robot_logs.episodes_per_task}"]),
        ):
            target = out / f"{script}_w{workers}"
            frames, seconds, wall, cpu = collect(script, target, workers, overrides)
            rows.append(f"| {script} | {workers} | {frames} | {frames / seconds:.1f} | {frames / wall:.1f} | "
                        f"{frames / cpu:.1f} | {size_mb(target):.2f} |")
    print("\n| collector | workers | frames | frames/s (collection loop) | frames/s (wall, with start-up) | "
          "frames per CPU-second | MB on disk |")
    print("|---|---|---|---|---|---|---|")
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


if __name__ == "__main__":
    main()
