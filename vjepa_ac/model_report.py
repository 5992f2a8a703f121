"""Offline world-model report: is the model precise enough to pick the right action? No planning.

Per task, on held-out episodes recorded fresh in the simulator (seeds far from the training logs'
and the benchmark's; a noisy scripted expert with random steps, like the training data):

1. prediction error: latent L1 of the predictor's open-loop rollout against the encoder's latents
   of the real frames at horizons 1..H, beside copy-last-frame and shuffled actions
   (`vjepa_ac.dynamics_eval.horizon_errors` over every window of the episodes);
2. energy ranking: within-episode Spearman between each frame's L1 energy to the goal image and the
   task distance, for the frozen encoder and raw pixels (`planners.energy_ranking`); and, over K
   one-step candidate actions from a held-out state, the Spearman between the predicted energy,
   the true next frame's encoder energy and the true task distance after the action;
3. argmin regret: the true task distance after the candidate a chooser picks minus the best among
   the K candidates, for the predictor's argmin, the argmin of the planner's whole energy (`planner`
   config: latent L1, action cost and the goal-state term, horizon 1), the argmin of the encoder's
   (and raw pixels') energy of the true next frames (what a perfect predictor in that
   representation would pick), the zero action and a random candidate.

The learned model sees the camera frame, the goal image and the end-effector state only. Everything
that reads the simulator (the expert that drives the episodes, the saved simulator states, the
candidates executed from them, task distances) is PRIVILEGED and used for evaluation only.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

import envs
from envs.rollouts import Episode, record_episode
from planners.energy import latent_l1_energy
from planners.base import Planner
from planners.energy_ranking import RankCorrelation, goal_energies, pixel_embedding, rank_correlation
from planners.factory import make_planner
from planners.sampling import gripper_commands, uniform_actions
from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.dynamics_eval import horizon_errors
from vjepa_ac.files import write_json, write_text_atomic
from vjepa_ac.state_action import GRIPPER_DIM, ROTATION_DIMS
from vjepa_ac.world_model import WorldModel

log = logging.getLogger(__name__)

# candidate-level rank correlations: (name, energy or distance series, the series it is ranked against)
CANDIDATE_RANKINGS = (("predicted vs true next-frame energy", "predicted", "encoder"),
                      ("true next-frame energy vs distance", "encoder", "distances"),
                      ("predicted energy vs distance", "predicted", "distances"))
CHOOSERS = ("predictor argmin", "planner energy argmin", "encoder argmin, true next frame",
            "pixels argmin, true next frame", "zero action", "random candidate")
# paired regret differences over the same states (first minus second): what prediction error costs, what the
# encoder's energy gains over standing still even with the true next frame, and what the planner's whole energy
# (the goal-state term and action cost on top of the latent L1) gains over the latent L1 alone
PAIRED = (("predictor argmin", "encoder argmin, true next frame"), ("encoder argmin, true next frame", "zero action"),
          ("planner energy argmin", "predictor argmin"))


class SimStateRecorder:
    """A policy wrapper that saves the simulator state (PRIVILEGED) of each frame before acting on it,
    so that any recorded frame can be restored and branched from."""

    def __init__(self, env: gym.Env, policy):
        self.sim, self.policy = env.unwrapped, policy
        self.sim_states: list[np.ndarray] = []

    def act(self) -> np.ndarray:
        self.sim_states.append(self.sim.get_sim_state())
        return self.policy.act()


@dataclass
class HeldOutEpisode:
    episode: Episode                # frames, states, actions, goal image, info["distances"] per frame
    sim_states: list[np.ndarray]    # PRIVILEGED: simulator state at frames 0 .. L-2 (each one acted on)


def record_held_out(env: gym.Env, seed: int, expert_noise: float, random_action_prob: float) -> HeldOutEpisode:
    """One episode of the noisy scripted expert with random steps (PRIVILEGED policy) from `seed`."""
    policy = SimStateRecorder(env, envs.ExpertWithRandomSteps(env, expert_noise, random_action_prob,
                                                              np.random.default_rng(seed)))
    return HeldOutEpisode(record_episode(env, policy, seed, info_keys=("distances",)), policy.sim_states)


class EpisodeWindows(Dataset):
    """Every window of `horizon + 1` consecutive frames of the episodes, as `horizon_errors` takes them:
    (frames float [T, C, H, W] normalised, states [T, 7], actions [T - 1, 7])."""

    def __init__(self, episodes: list[Episode], horizon: int):
        self.episodes, self.horizon = episodes, horizon
        self.index = [(e, t) for e, ep in enumerate(episodes) for t in range(len(ep.frames) - horizon)]
        if not self.index:
            raise ValueError(f"no episode has more than {horizon} steps, the longest prediction horizon")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e, t = self.index[i]
        ep, end = self.episodes[e], t + self.horizon + 1
        return (normalize_frames(ep.frames[t:end]), torch.from_numpy(ep.states[t:end]),
                torch.from_numpy(ep.actions[t:end - 1]))

    @property
    def episode_ids(self) -> np.ndarray:
        return np.array([e for e, _ in self.index])


def candidate_actions(low: np.ndarray, high: np.ndarray, k: int, generator: torch.Generator) -> torch.Tensor:
    """K one-step actions [K, A] as the CEM samples them: the zero action first, then K - 1 uniform
    within the bounds with rotation frozen at zero and the gripper from {open, hold, close}."""
    low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
    gripper = gripper_commands(low, high, torch.zeros_like(low), GRIPPER_DIM)
    actions = uniform_actions(low, high, (k - 1,), generator, GRIPPER_DIM, gripper)
    actions[:, list(ROTATION_DIMS)] = 0.0
    return torch.cat([torch.zeros(1, len(low)), actions])


def execute_candidates(env: gym.Env, sim_state: np.ndarray, actions: np.ndarray,
                       distance_key: str) -> tuple[np.ndarray, np.ndarray]:
    """PRIVILEGED: each action executed for one step from `sim_state` in the simulator. Returns the next
    frames uint8 [K, H, W, 3] and the task distances after the step [K] (info["distances"][distance_key],
    as the benchmark reports it); the simulator is left at `sim_state`."""
    sim = env.unwrapped
    frames, distances = [], []
    for action in actions:
        sim.set_sim_state(sim_state)
        obs, _, _, _, info = sim.step(action)
        frames.append(obs["pixels"])
        distances.append(info["distances"][distance_key])
    sim.set_sim_state(sim_state)
    return np.stack(frames), np.array(distances)


@dataclass
class CandidateOutcome:
    """K one-step candidates from one held-out state: energies to the goal and true distances [K]."""
    predicted: np.ndarray   # L1 of the predictor's one-step rollout to the goal embedding
    planner: np.ndarray     # the planner's whole energy (latent L1, action cost, goal-state term) of each candidate
    encoder: np.ndarray     # L1 of the true next frame's encoding to the goal embedding
    pixels: np.ndarray      # L1 of the true next frame's pixels to the goal image
    distances: np.ndarray   # PRIVILEGED task distance after the step

    def regrets(self) -> dict[str, float]:
        """Distance of each chooser's candidate minus the best candidate's (a random candidate: expected)."""
        d, best = self.distances, self.distances.min()
        return {"predictor argmin": d[self.predicted.argmin()] - best,
                "planner energy argmin": d[self.planner.argmin()] - best,
                "encoder argmin, true next frame": d[self.encoder.argmin()] - best,
                "pixels argmin, true next frame": d[self.pixels.argmin()] - best,
                "zero action": d[0] - best,
                "random candidate": d.mean() - best}


def evaluate_state(wm: WorldModel, planner: Planner, env: gym.Env, held: HeldOutEpisode, t: int,
                   z_goal: torch.Tensor, actions: torch.Tensor, distance_key: str) -> CandidateOutcome:
    """Score K candidates from frame `t` of `held` with the world model (and the planner's whole energy)
    and execute them in the simulator."""
    ep = held.episode
    z_now = wm.encode(ep.frames[t][None])
    state_now = torch.as_tensor(ep.states[t][None], dtype=torch.float32)
    predicted = latent_l1_energy(wm.rollout(z_now, state_now, actions[:, None]), z_goal)
    planned = planner.score(wm, z_now, state_now, z_goal, actions[:, None])
    frames, distances = execute_candidates(env, held.sim_states[t], actions.numpy(), distance_key)
    encoder = latent_l1_energy(wm.encode(frames)[:, None], z_goal)
    pixels = goal_energies(pixel_embedding, frames, ep.goal_pixels)
    return CandidateOutcome(predicted.cpu().numpy(), planned.cpu().numpy(), encoder.cpu().numpy(), pixels, distances)


def state_indices(steps: int, count: int) -> np.ndarray:
    """`count` frames spread evenly over an episode's `steps` acted-on frames, leaving out the reset frame."""
    return np.unique(np.linspace(1, steps - 1, count).round().astype(int))


@dataclass
class TaskReport:
    distance: str                               # key of info["distances"] (configs/task_distance.yaml)
    errors: dict[str, np.ndarray]               # method -> mean latent L1 per episode [episodes, H]
    windows: int                                # prediction windows behind `errors`
    frame_ranking: dict[str, RankCorrelation]   # representation -> energy vs distance over episode frames
    candidate_ranking: dict[str, RankCorrelation]  # CANDIDATE_RANKINGS name -> over held-out states
    regret: dict[str, np.ndarray]               # chooser -> regret per held-out state [S], distance units


def evaluate_task(wm: WorldModel, env: gym.Env, distance_key: str, cfg: DictConfig) -> TaskReport:
    """All three checks on `cfg.episodes` held-out episodes of one task (episode i uses seed `cfg.seed + i`)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    low, high = env.action_space.low, env.action_space.high
    planner = make_planner({**OmegaConf.to_container(cfg.planner, resolve=True), "horizon": 1}, env.action_space)
    held_out, outcomes = [], []
    for i in range(cfg.episodes):
        held = record_held_out(env, cfg.seed + i, cfg.expert_noise, cfg.random_action_prob)
        held_out.append(held)
        z_goal = wm.encode(held.episode.goal_pixels[None])
        for t in state_indices(len(held.sim_states), cfg.states_per_episode):   # before the next reset
            actions = candidate_actions(low, high, cfg.candidates, generator)
            outcomes.append(evaluate_state(wm, planner, env, held, t, z_goal, actions, distance_key))

    episodes = [h.episode for h in held_out]
    windows = EpisodeWindows(episodes, cfg.horizon)
    per_window = horizon_errors(wm, DataLoader(windows, batch_size=cfg.batch_size), cfg.seed)
    ids = windows.episode_ids   # windows of one episode overlap: intervals are over episodes
    errors = {m: np.stack([e[ids == i].mean(0) for i in np.unique(ids)]) for m, e in per_window.items()}

    distances = [np.array([d[distance_key] for d in ep.info["distances"]]) for ep in episodes]
    embeds = {"pixels": pixel_embedding, "encoder": lambda frames: wm.encode(frames).float().cpu().numpy()}
    frame_ranking = {name: rank_correlation([goal_energies(embed, ep.frames, ep.goal_pixels) for ep in episodes],
                                            distances, cfg.bootstrap, cfg.seed) for name, embed in embeds.items()}
    candidate_ranking = {name: rank_correlation([getattr(o, a) for o in outcomes], [getattr(o, b) for o in outcomes],
                                                cfg.bootstrap, cfg.seed) for name, a, b in CANDIDATE_RANKINGS}
    regrets = [o.regrets() for o in outcomes]
    return TaskReport(distance_key, errors, len(windows), frame_ranking, candidate_ranking,
                      {c: np.array([r[c] for r in regrets]) for c in CHOOSERS})


def evaluate(cfg: DictConfig) -> dict[str, TaskReport]:
    """The report of `cfg.world_model` on every task of `cfg.tasks`."""
    wm = WorldModel.from_checkpoint(cfg.world_model, cfg.device)
    reports = {}
    for task in cfg.tasks:
        env_cfg = OmegaConf.to_container(cfg.envs[task], resolve=True)
        env_cfg.pop("task")
        env = envs.make_env(task, **env_cfg)
        start = time.perf_counter()
        reports[task] = evaluate_task(wm, env, cfg.task_distance[task], cfg)
        env.close()
        log.info("%s: %d episodes, %d states x %d candidates in %.0f s", task, cfg.episodes,
                 len(reports[task].regret[CHOOSERS[0]]), cfg.candidates, time.perf_counter() - start)
    return reports


def mean_interval(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis and the half-width of its normal 95 % interval (nan for one sample)."""
    x = np.asarray(x, dtype=np.float64)
    half = 1.96 * x.std(0, ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(0), half


def _cell(x: np.ndarray, scale: float = 1.0, digits: int = 4) -> str:
    mean, half = mean_interval(np.asarray(x) * scale)
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def markdown_tables(reports: dict[str, TaskReport]) -> str:
    """The three tables: prediction error by horizon, energy rankings, argmin regret."""
    methods = list(next(iter(reports.values())).errors)
    lines = ["Prediction error: latent L1 of the open-loop rollout (mean over episodes ± 95 % interval)", "",
             "| task | horizon | " + " | ".join(methods) + " | predictor − copy last, paired | predictor / copy last |",
             "|---|---:|" + "---:|" * (len(methods) + 2)]
    for task, r in reports.items():
        for h in range(r.errors[methods[0]].shape[1]):
            predictor, copy_last = r.errors["predictor"][:, h], r.errors["copy last"][:, h]
            lines.append(f"| {task} | {h + 1} | " + " | ".join(_cell(r.errors[m][:, h]) for m in methods)
                         + f" | {_cell(predictor - copy_last)} | {predictor.mean() / copy_last.mean():.3f} |")
    lines += ["", "Energy ranking: Spearman with the PRIVILEGED task distance, mean [bootstrap 95 % interval]; "
              "frames: within each episode; candidates: over the K one-step candidates of each held-out state", "",
              "| task | distance | frames: pixels | frames: encoder | "
              + " | ".join(f"candidates: {name}" for name, _, _ in CANDIDATE_RANKINGS) + " |",
              "|---|---|" + "---:|" * (2 + len(CANDIDATE_RANKINGS))]
    for task, r in reports.items():
        cells = [r.frame_ranking["pixels"], r.frame_ranking["encoder"], *r.candidate_ranking.values()]
        lines.append(f"| {task} | {r.distance} | " + " | ".join(map(str, cells)) + " |")
    lines += ["", "Argmin regret: task distance after the chosen candidate minus the best candidate's, × 100 "
              "(cm; grasp's goal_features_l1 adds the closure in %), mean over held-out states ± 95 % interval; "
              "random candidate: expected over the K", "",
              "| task | states | " + " | ".join(CHOOSERS) + " | " + " | ".join(f"{a} − {b}, paired" for a, b in PAIRED)
              + " |", "|---|---:|" + "---:|" * (len(CHOOSERS) + len(PAIRED))]
    for task, r in reports.items():
        cells = [_cell(r.regret[c], 100, 2) for c in CHOOSERS] + [_cell(r.regret[a] - r.regret[b], 100, 2)
                                                                   for a, b in PAIRED]
        lines.append(f"| {task} | {len(r.regret[CHOOSERS[0]])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_json(cfg: DictConfig, reports: dict[str, TaskReport]) -> dict:
    def summary(x: np.ndarray, scale: float = 1.0) -> dict:
        mean, half = mean_interval(np.asarray(x) * scale)
        return {"mean": np.round(mean, 6).tolist(), "ci95": np.round(half, 6).tolist()}

    return {"settings": OmegaConf.to_container(cfg, resolve=True), "tasks": {task: {
        "distance": r.distance, "episodes": len(r.errors["predictor"]), "windows": r.windows,
        "states": len(r.regret[CHOOSERS[0]]),
        "prediction_error": {m: summary(e) for m, e in r.errors.items()},
        "frame_ranking": {name: vars(c) for name, c in r.frame_ranking.items()},
        "candidate_ranking": {name: vars(c) for name, c in r.candidate_ranking.items()},
        "regret_x100": {c: summary(x, 100) for c, x in r.regret.items()},
        "regret_x100_paired": {f"{a} - {b}": summary(r.regret[a] - r.regret[b], 100) for a, b in PAIRED}}
        for task, r in reports.items()}}


def plot(reports: dict[str, TaskReport], path: Path) -> None:
    """Top row: prediction error by horizon per task; bottom row: regret per chooser."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(reports), figsize=(3.6 * len(reports), 6.5), squeeze=False)
    for col, (task, r) in enumerate(reports.items()):
        ax = axes[0, col]
        for m, e in r.errors.items():
            mean, half = mean_interval(e)
            horizons = np.arange(1, len(mean) + 1)
            ax.errorbar(horizons, mean, yerr=half, marker="o", capsize=3, label=m)
        ax.set(title=task, xlabel="horizon (steps)", xticks=horizons)
        ax = axes[1, col]
        means, halves = zip(*(mean_interval(r.regret[c] * 100) for c in CHOOSERS))
        ax.bar(range(len(CHOOSERS)), means, yerr=halves, capsize=3, color=[f"C{i}" for i in range(len(CHOOSERS))])
        ax.set_xticks(range(len(CHOOSERS)), [c.replace(", ", "\n") for c in CHOOSERS], rotation=60, fontsize=7)
    axes[0, 0].set_ylabel("latent L1 error")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].set_ylabel("regret (distance × 100)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(cfg: DictConfig, reports: dict[str, TaskReport], out: Path) -> str:
    """Write `out`/model_report.md, model_report.json and model_report.png; return the markdown tables."""
    header = (f"World-model report for {cfg.world_model}: {cfg.episodes} held-out episodes per task (seeds "
              f"{cfg.seed}+; scripted expert, PRIVILEGED, with motion noise {cfg.expert_noise} and random steps "
              f"{cfg.random_action_prob}), {cfg.states_per_episode} states per episode, K = {cfg.candidates} "
              f"one-step candidates each.")
    tables = markdown_tables(reports)
    write_text_atomic(out / "model_report.md", header + "\n\n" + tables + "\n")
    write_json(out / "model_report.json", report_json(cfg, reports))
    plot(reports, out / "model_report.png")
    return tables
