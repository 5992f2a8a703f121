"""The benchmark: tasks x methods x seeded episodes through the MPC loop, with honest statistics.

Every method runs the same seeds with the same step budget. A cell (task, method) reports success
at the end of the budget (the headline) with a Wilson 95 % interval, success at any step, mean steps
to first success, planning time per action (median and p95 over plans; the mean over all actions,
which amortises a two-level planner's high-level searches over the steps between them) and the final
task distance.

Methods are built by `planners.factory` (its docstring lists the kinds and keys). Episodes are
independent jobs run over processes; each writes its own JSON file, so an interrupted benchmark
resumes where it stopped. `planners` does not import `envs`: the caller passes the env and expert
factories (`envs.make_env`, `envs.make_expert`). `scripts/plan.py` is a one-cell benchmark.
"""
from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from planners.factory import (build_method, check_method, is_privileged, method_subgoals, predicts_latents,
                              resolve_methods)
from planners.media import plot_energies, write_episode_video
from planners.mpc import run_episode
from vjepa_ac.files import write_json

log = logging.getLogger("benchmark")


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


def validate_config(cfg: dict) -> None:
    """Fail before any episode runs, naming the bad key (learned checkpoints are loaded once here)."""
    unknown = [t for t in cfg["tasks"] if t not in cfg["envs"]]
    if unknown:
        raise ValueError(f"tasks {unknown} have no entry under `envs` (known: {sorted(cfg['envs'])})")
    missing = [t for t in cfg["tasks"] if t not in cfg["task_distance"]]
    if missing:
        raise ValueError(f"tasks {missing} have no entry under `task_distance`")
    for name in cfg["run_methods"]:
        if name not in cfg["methods"]:
            raise ValueError(f"run_methods names {name!r}, not one of methods {sorted(cfg['methods'])}")
        check_method(name, cfg["methods"][name])


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


# Per-process cache: a cell's settings -> (env, world model, planner), so a worker builds them once.
_CELLS: dict[str, tuple] = {}


def _build_cell(cfg: dict, job: Job, make_env: Callable, make_expert: Callable) -> tuple:
    method = cfg["methods"][job.method]
    env_cfg = {**cfg["envs"][job.task], **method.get("env", {})}
    key = json.dumps([env_cfg, method, cfg["device"]], sort_keys=True, default=str)  # not just the names
    if key not in _CELLS:
        env = make_env(env_cfg.pop("task"), **env_cfg)
        _CELLS[key] = (env, *build_method(method, env, make_expert, cfg["device"]))
    return _CELLS[key]


def run_job(cfg: dict, job: Job, out: str, make_env: Callable, make_expert: Callable) -> dict:
    """Run one episode and write its summary JSON (and mp4 + energy plot if asked); returns the summary."""
    torch.set_num_threads(cfg["threads"])
    env, world_model, planner = _build_cell(cfg, job, make_env, make_expert)
    method = cfg["methods"][job.method]
    result = run_episode(env, world_model, planner, job.seed, max_steps=cfg["max_steps"],
                         execute_steps=method.get("execute_steps", 1), stop_on_success=cfg["stop_on_success"],
                         record_frames=job.video, subgoals=method_subgoals(method, cfg["subgoal_switch"]))
    summary = {"task": job.task, "method": job.method, **result.summary(), "privileged": is_privileged(method)}
    if job.video:
        stem = Path(out) / "videos" / f"{job.task}_{job.method}_seed{job.seed}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        write_episode_video(result, stem.with_suffix(".mp4"), fps=int(cfg["envs"][job.task].get("control_hz", 5)))
        title = f"{job.task}, {method_label(cell_kind(job.method, method))}, seed {job.seed}"
        plot_energies(result, stem.with_suffix(".png"), title=title)
    write_json(episode_path(Path(out), job), summary)
    t = result.time_per_action()
    log.info("%s %s seed %d: success at end %s, at any step %s, %d steps, planning %.3f s/action "
             "(encode %.3f, rollouts %.3f, overhead %.3f)", job.task, job.method, job.seed, result.success_at_end,
             result.success_any, result.steps, t["total_s"], t["encode_s"], t["rollout_s"], t["overhead_s"])
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


def subgoal_quality(subgoals: list[dict]) -> dict:
    """How close the low level of a two-level planner came to the subgoals its high level set: the
    closest energy to each as a fraction of its energy when set (0 = reached exactly, 1 = no closer),
    median over subgoals, and the share that came below 0.2 of it (the default `reached_fraction`).
    A subgoal prior's subgoals are states: the same from the end effector's distance to each (cm),
    with the median closest distance and the share within 1 cm (where a keyframe counts as arrived)."""
    unit = "cm" if "closest_cm" in subgoals[0] else "energy"
    ratios = np.array([g[f"closest_{unit}"] / g[f"start_{unit}"] for g in subgoals])
    quality = {"count": len(ratios), "closest_fraction_median": float(np.median(ratios)),
               "share_below_0.2": float(np.mean(ratios <= 0.2))}
    if unit == "cm":
        closest = np.array([g["closest_cm"] for g in subgoals])
        quality |= {"closest_cm_median": float(np.median(closest)), "share_within_1cm": float(np.mean(closest <= 1))}
    return quality


def summarize_cell(episodes: list[dict], distance_key: str) -> dict:
    """Statistics of one cell's episodes."""
    n = len(episodes)
    wins = sum(e["success_at_end"] for e in episodes)
    lo, hi = wilson_interval(wins, n)
    any_wins = [e for e in episodes if e["success_any"]]
    per_action = [(r["encode_s"] + r["rollout_s"] + r["overhead_s"]) / r["executed"]
                  for e in episodes for r in e["records"] if r["executed"]]
    distances = [e["final_distances"][distance_key] for e in episodes if distance_key in e["final_distances"]]
    split = {k: float(np.mean([e["time_per_action"][k] for e in episodes])) if n else None
             for k in ("encode_s", "rollout_s", "overhead_s")}
    subgoals = [g for e in episodes for g in e.get("planner_log", {}).get("subgoals", [])
                if g.get("start_energy", g.get("start_cm")) > 0]
    return {
        "episodes": n,
        "subgoals": subgoal_quality(subgoals) if subgoals else None,
        "success": wins / n if n else 0.0,
        "success_ci95": [lo, hi],
        "success_any": len(any_wins) / n if n else 0.0,
        "mean_steps_to_success": float(np.mean([e["first_success_step"] for e in any_wins])) if any_wins else None,
        "plan_s_median": float(np.median(per_action)) if per_action else None,
        "plan_s_p95": float(np.percentile(per_action, 95)) if per_action else None,
        "plan_s_mean": sum(split.values()) if n else None,  # every plan's time over every action: amortised
        "plan_s_split_mean": split,
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
            cells.append({"task": task, **cell_kind(method, cfg["methods"][method]),
                          **summarize_cell(episodes, cfg["task_distance"][task])})
    return {"config": cfg, "cells": cells}


def cell_kind(name: str, method: dict) -> dict:
    """What a table says about a method beside its name: privileged, its goal mode, and whether a learned
    planner's energy ignores its predictor (`predictor_unused`: a baseline of the world model)."""
    privileged = is_privileged(method)
    return {"method": name, "privileged": privileged, "goals": method.get("goals", "final"),
            "predictor_unused": method["kind"] == "planner" and not privileged and not predicts_latents(method)}


def method_label(cell: dict) -> str:
    """The method's name as tables and plots show it (from a `cell_kind` dict or a results cell):
    privileged baselines, learned planners that never call their predictor, and the subgoal mode are
    said in words."""
    notes = [note for note, on in (("privileged", cell["privileged"]),
                                   ("no predictor in the energy", cell.get("predictor_unused", False)),
                                   ("with subgoal images", cell.get("goals", "final") == "subgoals")) if on]
    return f"{cell['method']} ({', '.join(notes)})" if notes else cell["method"]


def markdown_table(results: dict) -> str:
    """One row per cell."""
    fmt = lambda x, spec: "-" if x is None else format(x, spec)  # noqa: E731
    lines = ["| task | method | success (95 % CI) | success any step | steps to success | plan s/action (median / p95 / mean) | final distance (m) |",
             "|---|---|---|---|---|---|---|"]
    for c in results["cells"]:
        lo, hi = c["success_ci95"]
        lines.append(
            f"| {c['task']} | {method_label(c)} | "
            f"{100 * c['success']:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}] (n={c['episodes']}) | "
            f"{100 * c['success_any']:.0f} % | {fmt(c['mean_steps_to_success'], '.1f')} | "
            f"{fmt(c['plan_s_median'], '.3f')} / {fmt(c['plan_s_p95'], '.3f')} / {fmt(c.get('plan_s_mean'), '.3f')} | "
            f"{fmt(c['final_distance_mean'], '.3f')} ({c['distance_key']}) |")
    return "\n".join(lines) + "\n"


def summary_table(results: dict) -> str:
    """One row per method, one column per task: success at the end of the budget with its Wilson 95 %
    interval and count, and the slowest task's median planning time per action."""
    tasks = list(dict.fromkeys(c["task"] for c in results["cells"]))
    lines = [f"| method | {' | '.join(tasks)} | plan s/action (median, slowest task) |",
             "|---|" + "---|" * (len(tasks) + 1)]
    for method in dict.fromkeys(c["method"] for c in results["cells"]):
        cells = {c["task"]: c for c in results["cells"] if c["method"] == method}
        rates = []
        for task in tasks:
            c = cells[task]
            lo, hi = c["success_ci95"]
            wins = round(c["success"] * c["episodes"])
            rates.append(f"{100 * c['success']:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}] ({wins}/{c['episodes']})")
        times = [c["plan_s_median"] for c in cells.values() if c["plan_s_median"] is not None]
        slowest = f"{max(times):.3f}" if times else "-"
        lines.append(f"| {method_label(next(iter(cells.values())))} | {' | '.join(rates)} | {slowest} |")
    return "\n".join(lines) + "\n"


def results_markdown(results: dict) -> str:
    """results.md: the summary (a row per method) over the table of every cell."""
    return ("Success at the end of the budget, 95 % Wilson interval (successes/episodes):\n\n"
            + summary_table(results) + "\nEvery cell:\n\n" + markdown_table(results))


def plot_success(results: dict, path: Path) -> None:
    """Grouped bars of success at the end per task and method, with Wilson 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(c["task"] for c in results["cells"]))
    methods = list(dict.fromkeys(c["method"] for c in results["cells"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(3.8 + 1.6 * len(tasks), 3.8))
    for i, method in enumerate(methods):
        cells = [next(c for c in results["cells"] if c["task"] == t and c["method"] == method) for t in tasks]
        privileged, goals = cells[0]["privileged"], cells[0].get("goals", "final")
        x = np.arange(len(tasks)) + (i - (len(methods) - 1) / 2) * width
        rates = np.array([c["success"] for c in cells])
        err = np.array([[r - c["success_ci95"][0], c["success_ci95"][1] - r] for r, c in zip(rates, cells)]).T
        ax.bar(x, 100 * rates, width, yerr=100 * err, capsize=3, label=method_label(cells[0]),
               hatch=("//" if privileged else "") + (".." if goals == "subgoals" else "") or None)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("success at end (%), 95 % CI")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over one
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plan_config(cfg: dict) -> dict:
    """The benchmark config of scripts/plan.py: one task (`env`), one planner method, its episodes."""
    task = cfg["env"]["task"]
    name = f"{'oracle' if cfg['world_model'] == 'oracle' else 'learned'}_{cfg['planner']['name']}"
    if cfg["goals"] == "subgoals":
        name += "_subgoals"
    method = {"kind": "planner", "world_model": cfg["world_model"], "planner": cfg["planner"],
              "goals": cfg["goals"], "execute_steps": cfg["execute_steps"]}
    if cfg.get("hierarchical"):
        name += "_hierarchical"
        method["high_level"] = cfg["high_level"]
    return {"tasks": [task], "envs": {task: cfg["env"]}, "methods": {name: method}, "run_methods": [name],
            "task_distance": cfg["task_distance"], "subgoal_switch": cfg["subgoal_switch"], "seed": cfg["seed"],
            "episodes": cfg["episodes"], "max_steps": cfg["max_steps"], "stop_on_success": cfg["stop_on_success"],
            "videos_per_cell": cfg["videos"], "num_workers": 0, "threads": cfg["threads"], "device": cfg["device"]}


def run_benchmark(cfg: dict, out: Path, make_env: Callable, make_expert: Callable) -> dict:
    """Validate, run what is missing, aggregate; writes results.json, results.md and success.png."""
    cfg = {**cfg, "methods": resolve_methods(cfg["methods"])}
    validate_config(cfg)
    out.mkdir(parents=True, exist_ok=True)
    run_jobs(cfg, out, make_env, make_expert)
    results = collect_results(cfg, out)
    write_json(out / "results.json", results)
    (out / "results.md").write_text(results_markdown(results))
    plot_success(results, out / "success.png")
    return results
