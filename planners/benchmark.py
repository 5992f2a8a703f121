"""The benchmark: tasks x methods x seeded episodes through the MPC loop, with honest statistics.

Every method runs the same seeds with the same step budget. A cell (task, method) reports success
at the end of the budget (the headline) with a Wilson 95 % interval, success at any step, mean steps
to first success, planning time per action (median and p95) and the final task distance.

Methods (configs/benchmark.yaml, `methods`), each with a `kind`:
  random   uniformly random actions within the bounds
  expert   the scripted expert (PRIVILEGED: reads the simulator state)
  planner  a planner over a world model: a checkpoint directory (learned, pixels + proprioception
           only) or "oracle" (PRIVILEGED: the simulator as the world model)

Episodes are independent jobs run over processes; each writes its own JSON file, so an interrupted
benchmark resumes where it stopped. `planners` does not import `envs`: the caller passes the env
and expert factories (`envs.make_env`, `envs.make_expert`).
"""
from __future__ import annotations

import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from planners.factory import load_world_model, make_planner
from planners.media import write_episode_video
from planners.mpc import run_episode
from planners.policy import NullWorldModel, PolicyPlanner, RandomActions

log = logging.getLogger("benchmark")

METHOD_KINDS = ("random", "expert", "planner")


@dataclass(frozen=True)
class Job:
    task: str
    method: str
    seed: int
    video: bool  # write an mp4 of this episode


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % for z = 1.96); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def is_privileged(method: dict) -> bool:
    return method["kind"] == "expert" or (method["kind"] == "planner" and method["world_model"] == "oracle")


def validate_config(cfg: dict) -> None:
    """Fail before any episode runs, naming the bad key."""
    unknown = [t for t in cfg["tasks"] if t not in cfg["envs"]]
    if unknown:
        raise ValueError(f"tasks {unknown} have no entry under `envs` (known: {sorted(cfg['envs'])})")
    for name in cfg["run_methods"]:
        if name not in cfg["methods"]:
            raise ValueError(f"run_methods names {name!r}, not one of methods {sorted(cfg['methods'])}")
        method = cfg["methods"][name]
        if method.get("kind") not in METHOD_KINDS:
            raise ValueError(f"methods.{name}.kind must be one of {METHOD_KINDS}, got {method.get('kind')!r}")
        source = method.get("world_model")
        if method["kind"] == "planner" and source not in ("oracle", "random") and not Path(str(source)).is_dir():
            raise FileNotFoundError(f"methods.{name}.world_model: checkpoint directory {source!r} not found")


def make_jobs(cfg: dict) -> list[Job]:
    """Every (task, method, seed), grouped by cell so each worker reuses its env and model."""
    seeds = [cfg["seed"] + i for i in range(cfg["episodes"])]
    return [Job(task, method, seed, i < cfg["videos_per_cell"])
            for task in cfg["tasks"] for method in cfg["run_methods"] for i, seed in enumerate(seeds)]


def episode_path(out: Path, job: Job) -> Path:
    return out / "episodes" / job.task / job.method / f"seed_{job.seed}.json"


def read_episode(path: Path) -> dict | None:
    """A finished episode's summary, or None if it is missing or unreadable (then it is re-run)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data) -> None:
    """Atomic JSON write; non-finite floats become null (JSON has no inf/NaN)."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=1))
    os.replace(tmp, path)


# Per-process cache: (task, method) -> (env, world model, planner), so a worker builds them once.
_CELLS: dict[tuple[str, str], tuple] = {}


def _build_cell(cfg: dict, job: Job, make_env: Callable, make_expert: Callable) -> tuple:
    key = (job.task, job.method)
    if key not in _CELLS:
        env_cfg = dict(cfg["envs"][job.task])
        env = make_env(env_cfg.pop("task"), **env_cfg)
        method = cfg["methods"][job.method]
        low, high = env.action_space.low, env.action_space.high
        if method["kind"] == "random":
            world_model, planner = NullWorldModel(), RandomActions(low, high, **method.get("kwargs", {}))
        elif method["kind"] == "expert":
            noise = method.get("noise", 0.0)
            world_model = NullWorldModel(privileged=True)
            planner = PolicyPlanner(low, high, lambda: make_expert(env, noise=noise, rng=np.random.default_rng(0)).act)
        else:
            world_model = load_world_model(method["world_model"], env, cfg.get("random_init"))
            planner = make_planner(method["planner"], env.action_space)
        _CELLS[key] = (env, world_model, planner)
    return _CELLS[key]


def run_job(cfg: dict, job: Job, out: str, make_env: Callable, make_expert: Callable) -> dict:
    """Run one episode and write its summary JSON (and mp4 if asked); returns the summary."""
    torch.set_num_threads(cfg["torch_threads_per_worker"])
    env, world_model, planner = _build_cell(cfg, job, make_env, make_expert)
    result = run_episode(env, world_model, planner, job.seed, max_steps=cfg["max_steps"],
                         execute_steps=cfg["methods"][job.method].get("execute_steps", 1), record_frames=job.video)
    summary = {"task": job.task, "method": job.method, **result.summary(),
               "privileged": is_privileged(cfg["methods"][job.method])}
    if job.video:
        video = Path(out) / "videos" / f"{job.task}_{job.method}_seed{job.seed}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        write_episode_video(result, video, fps=int(cfg["envs"][job.task].get("control_hz", 5)))
    write_json(episode_path(Path(out), job), summary)
    return summary


def run_jobs(cfg: dict, out: Path, make_env: Callable, make_expert: Callable) -> None:
    """Run every job whose result file is missing, over `num_workers` processes (0: in this one)."""
    jobs = make_jobs(cfg)
    todo = [j for j in jobs if read_episode(episode_path(out, j)) is None]
    log.info("%d episodes in %d cells; %d done already, %d to run", len(jobs),
             len(cfg["tasks"]) * len(cfg["run_methods"]), len(jobs) - len(todo), len(todo))
    if cfg["num_workers"] == 0:
        for job in tqdm(todo, desc="episodes"):
            run_job(cfg, job, str(out), make_env, make_expert)
        return
    with ProcessPoolExecutor(cfg["num_workers"], mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_job, cfg, job, str(out), make_env, make_expert) for job in todo]
        for future in tqdm(futures, desc="episodes"):
            future.result()


def summarize_cell(episodes: list[dict], distance_key: str) -> dict:
    """Statistics of one cell's episodes."""
    n = len(episodes)
    wins = sum(e["success_at_end"] for e in episodes)
    lo, hi = wilson_interval(wins, n)
    any_wins = [e for e in episodes if e["success_any"]]
    per_action = [(r["encode_s"] + r["rollout_s"] + r["overhead_s"]) / r["executed"]
                  for e in episodes for r in e["records"] if r["executed"]]
    distances = [e["final_distances"][distance_key] for e in episodes if distance_key in e["final_distances"]]
    return {
        "episodes": n,
        "success": wins / n if n else 0.0,
        "success_ci95": [lo, hi],
        "success_any": len(any_wins) / n if n else 0.0,
        "mean_steps_to_success": float(np.mean([e["first_success_step"] for e in any_wins])) if any_wins else None,
        "plan_s_median": float(np.median(per_action)) if per_action else None,
        "plan_s_p95": float(np.percentile(per_action, 95)) if per_action else None,
        "distance_key": distance_key,
        "final_distance_mean": float(np.mean(distances)) if distances else None,
    }


def collect_results(cfg: dict, out: Path) -> dict:
    """Aggregate the episode files of the configured cells into the results dict (results.json)."""
    jobs, cells = make_jobs(cfg), []
    for task in cfg["tasks"]:
        for method in cfg["run_methods"]:
            paths = [episode_path(out, j) for j in jobs if (j.task, j.method) == (task, method)]
            episodes = [e for e in map(read_episode, paths) if e is not None]
            cells.append({"task": task, "method": method, "privileged": is_privileged(cfg["methods"][method]),
                          **summarize_cell(episodes, cfg["task_distance"][task])})
    return {"config": cfg, "cells": cells}


def method_label(method: str, privileged: bool) -> str:
    return f"{method} (privileged)" if privileged else method


def markdown_table(results: dict) -> str:
    """One row per cell."""
    fmt = lambda x, spec: "-" if x is None else format(x, spec)  # noqa: E731
    lines = ["| task | method | success (95 % CI) | success any step | steps to success | plan s/action (median / p95) | final distance (m) |",
             "|---|---|---|---|---|---|---|"]
    for c in results["cells"]:
        lo, hi = c["success_ci95"]
        lines.append(
            f"| {c['task']} | {method_label(c['method'], c['privileged'])} | "
            f"{100 * c['success']:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}] (n={c['episodes']}) | "
            f"{100 * c['success_any']:.0f} % | {fmt(c['mean_steps_to_success'], '.1f')} | "
            f"{fmt(c['plan_s_median'], '.3f')} / {fmt(c['plan_s_p95'], '.3f')} | "
            f"{fmt(c['final_distance_mean'], '.3f')} ({c['distance_key']}) |")
    return "\n".join(lines) + "\n"


def plot_success(results: dict, path: Path) -> None:
    """Grouped bars of success at the end per task and method, with Wilson 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(c["task"] for c in results["cells"]))
    methods = list(dict.fromkeys((c["method"], c["privileged"]) for c in results["cells"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(tasks), 3.8))
    for i, (method, privileged) in enumerate(methods):
        cells = [next(c for c in results["cells"] if c["task"] == t and c["method"] == method) for t in tasks]
        x = np.arange(len(tasks)) + (i - (len(methods) - 1) / 2) * width
        rates = np.array([c["success"] for c in cells])
        err = np.array([[r - c["success_ci95"][0], c["success_ci95"][1] - r] for r, c in zip(rates, cells)]).T
        ax.bar(x, 100 * rates, width, yerr=100 * err, capsize=3, label=method_label(method, privileged),
               hatch="//" if privileged else None)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("success at end (%), 95 % CI")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_benchmark(cfg: dict, out: Path, make_env: Callable, make_expert: Callable) -> dict:
    """Validate, run what is missing, aggregate; writes results.json, results.md and success.png."""
    validate_config(cfg)
    out.mkdir(parents=True, exist_ok=True)
    run_jobs(cfg, out, make_env, make_expert)
    results = collect_results(cfg, out)
    write_json(out / "results.json", results)
    (out / "results.md").write_text(markdown_table(results))
    plot_success(results, out / "success.png")
    return results
