"""The sim collectors: an unlabeled video corpus (`collect_videos`) and robot logs as a LeRobotDataset
v3.0 (`collect_robot_logs`), with their random-motion policy, scene jitter and worker processes.
Both return what they did (`CollectionStats`).

Work is split into jobs that each carry their own seed, so results do not depend on the number of
workers, and a resumed run redoes exactly the jobs that were missing. Workers reach the env and the
expert through factories (`envs.make_env`, `envs.make_expert`) passed to `parallel_map`.
"""

import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import gymnasium as gym
import mujoco
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs
from envs.rollouts import Episode, record_episode
from vjepa_ac.data.lerobot_format import ACTION_KEY, ENVIRONMENT_STATE_KEY, STATE_KEY
from vjepa_ac.data.lerobot_writer import LeRobotWriter, robot_log_features
from vjepa_ac.state_action import ACTION_DIM, GRIPPER_DIM, POSITION_DIMS, ROTATION_DIMS

log = logging.getLogger(__name__)


class SmoothRandomPolicy:
    """Temporally correlated random end-effector motion: AR(1) noise in units of the per-step action
    bounds (so it wanders rather than jitters), orientation deltas scaled down, and the gripper
    opened or closed now and then."""

    def __init__(self, action_space: gym.spaces.Box, rng: np.random.Generator, smoothing: float = 0.8,
                 scale: float = 0.7, rotation_scale: float = 0.3, gripper_switch_prob: float = 0.1):
        self.high = action_space.high.astype(np.float64)
        self.rng, self.smoothing, self.gripper_switch_prob = rng, smoothing, gripper_switch_prob
        self.scale = np.zeros(ACTION_DIM)  # the gripper is switched, not driven by the noise
        self.scale[list(POSITION_DIMS)] = scale
        self.scale[list(ROTATION_DIMS)] = scale * rotation_scale
        self.velocity = np.zeros(ACTION_DIM)
        self.gripper_delta = 0.0

    def act(self) -> np.ndarray:
        noise = self.rng.standard_normal(ACTION_DIM) * np.sqrt(1 - self.smoothing**2)
        self.velocity = self.smoothing * self.velocity + noise
        action = self.velocity * self.scale * self.high
        if self.rng.random() < self.gripper_switch_prob:
            self.gripper_delta = float(self.rng.choice([-1.0, 1.0]))
        action[GRIPPER_DIM] = self.gripper_delta
        return np.clip(action, -self.high, self.high).astype(np.float32)


class SceneJitter:
    """Randomises lighting and nudges the fixed camera of a MuJoCo env between videos (the camera
    keeps aiming at its target body). Defaults are captured once and jitter is applied around them."""

    def __init__(self, env: gym.Env, camera: str = "front", light_scale: tuple[float, float] = (0.6, 1.4),
                 camera_shift: float = 0.03):
        self.model = env.unwrapped.model
        self.camera = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self.camera < 0:
            raise ValueError(f"camera {camera!r} not in the env's model")
        self.light_scale, self.camera_shift = light_scale, camera_shift
        self.base = {"light_diffuse": self.model.light_diffuse.copy(), "light_pos": self.model.light_pos.copy(),
                     "headlight": self.model.vis.headlight.diffuse.copy(), "cam_pos": self.model.cam_pos[self.camera].copy()}

    def apply(self, rng: np.random.Generator) -> None:
        m, b = self.model, self.base
        m.light_diffuse[:] = np.clip(b["light_diffuse"] * rng.uniform(*self.light_scale, size=(len(b["light_diffuse"]), 1))
                                     * rng.uniform(0.9, 1.1, size=b["light_diffuse"].shape), 0, 1)
        m.light_pos[:] = b["light_pos"] + rng.uniform(-0.3, 0.3, size=b["light_pos"].shape)
        m.vis.headlight.diffuse[:] = np.clip(b["headlight"] * rng.uniform(*self.light_scale), 0, 1)
        m.cam_pos[self.camera] = b["cam_pos"] + rng.uniform(-self.camera_shift, self.camera_shift, 3)


MakeExpert = Callable[[gym.Env, float, np.random.Generator], object]  # envs.make_expert(env, noise, rng)


def record_video(env: gym.Env, make_expert: MakeExpert, rng: np.random.Generator, num_frames: int,
                 expert_prob: float = 0.5, noise_levels: tuple[float, ...] = (0.0, 0.1, 0.3),
                 segment_steps: tuple[int, int] = (8, 24)) -> np.ndarray:
    """One continuous unlabeled video `uint8[num_frames, H, W, 3]` from a fresh episode: segments of
    smooth random motion alternate with segments of a noisy scripted expert (which reaches, grasps,
    lifts, pushes and carries the object), so the video shows the arm and the object interacting."""
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    frames = [obs["pixels"]]
    while len(frames) < num_frames:
        if rng.random() < expert_prob:
            policy = make_expert(env, float(rng.choice(noise_levels)), rng)
        else:
            policy = SmoothRandomPolicy(env.action_space, rng)
        for _ in range(int(rng.integers(*segment_steps))):
            obs, *_ = env.step(policy.act())
            frames.append(obs["pixels"])
            if len(frames) == num_frames:
                break
    return np.stack(frames)


# ----------------------------------------------------------------------------- worker processes

_WORKER: dict[str, Any] = {}


def _init_worker(make_env: Callable[[str], gym.Env], make_expert: MakeExpert) -> None:
    _WORKER.update(make_env=make_env, make_expert=make_expert, envs={}, jitters={})


def worker_env(task: str) -> gym.Env:
    """This process's env of `task` (made once per process)."""
    if task not in _WORKER["envs"]:
        _WORKER["envs"][task] = _WORKER["make_env"](task)
    return _WORKER["envs"][task]


def parallel_map(fn: Callable, jobs: Iterable, num_workers: int, make_env: Callable[[str], gym.Env],
                 make_expert: MakeExpert) -> Iterator:
    """`fn(job)` for every job, results in job order, in `num_workers` processes (or in this process
    for 1). `fn` must be a module-level function; it reaches the env through `worker_env`. Workers are
    spawned, not forked: a forked copy of a process that already holds a GL context or an OpenMP pool
    can hang."""
    if num_workers <= 1:
        _init_worker(make_env, make_expert)
        yield from map(fn, jobs)
        return
    with mp.get_context("spawn").Pool(num_workers, _init_worker, (make_env, make_expert)) as pool:
        yield from pool.imap(fn, jobs)


@dataclass(frozen=True)
class VideoJob:
    index: int
    task: str
    seed: int
    path: str
    num_frames: int
    fps: int
    expert_prob: float
    noise_levels: tuple[float, ...]
    segment_steps: tuple[int, int]
    light_scale: tuple[float, float]
    camera_shift: float


def video_job(job: VideoJob) -> int:
    """Render one video of a jittered scene and write it (atomically) to `job.path`; returns its frames."""
    from vjepa_ac.data.video_io import write_video

    env = worker_env(job.task)
    rng = np.random.default_rng([job.seed, job.index])
    jitters = _WORKER["jitters"]
    if job.task not in jitters:
        jitters[job.task] = SceneJitter(env, env.unwrapped.cfg["camera"], job.light_scale, job.camera_shift)
    jitters[job.task].apply(rng)
    frames = record_video(env, _WORKER["make_expert"], rng, job.num_frames, job.expert_prob, job.noise_levels,
                          job.segment_steps)
    write_video(job.path, frames, job.fps)
    return len(frames)


@dataclass(frozen=True)
class EpisodeJob:
    index: int
    task: str
    seed: int
    random_fraction: float
    noise_levels: tuple[float, ...]
    mistake_fraction: float = 0.0
    mistake_offset: tuple[float, float] = (0.015, 0.04)
    detour_fraction: float = 0.0
    detour_height: tuple[float, float] = (0.04, 0.1)
    max_attempts: int = 5


def episode_job(job: EpisodeJob) -> tuple[Episode, dict]:
    """One robot-log episode: a noisy scripted expert or smooth random exploration, chosen by the
    job's seed; on a task whose expert picks the object up, an expert episode is with probability `mistake_fraction` one whose
    first grasp misses (`envs.ExpertWithMistakes`); on Reach, with probability `detour_fraction`, one that
    first goes above the object as if to grasp it (`envs.ExpertWithDetour`). The metadata's `takeover` is
    the first frame whose action is the expert's own (0 but after a mistake or a detour; the episode's
    length for random motion). An
    episode whose states are not finite (an unstable simulation) is re-run from a new seed derived
    from the job, up to `max_attempts` times; the metadata records the attempts."""
    env = worker_env(job.task)
    for attempt in range(job.max_attempts):
        rng = np.random.default_rng([job.seed, job.index, attempt])
        explore = bool(rng.random() < job.random_fraction)
        noise = 0.0 if explore else float(rng.choice(job.noise_levels))
        mistake = not explore and env.unwrapped.task.picks_up and bool(rng.random() < job.mistake_fraction)
        # drawn only when asked for, so logs collected without detours stay as they were
        detour = (not explore and env.unwrapped.task.name == "reach" and job.detour_fraction > 0
                  and bool(rng.random() < job.detour_fraction))
        policy = SmoothRandomPolicy(env.action_space, rng) if explore else _WORKER["make_expert"](env, noise, rng)
        if mistake:
            policy = envs.ExpertWithMistakes(policy, job.mistake_offset, rng)
        if detour:
            policy = envs.ExpertWithDetour(policy, job.detour_height, rng)
        handed_over = mistake or detour   # a wrapper whose `takeover` is where the expert's own actions begin
        env_seed = int(rng.integers(2**31))
        views = ("wrist_pixels",) if env.unwrapped.cfg["wrist_camera"] else ()
        episode = record_episode(env, policy, env_seed, info_keys=("environment_state",), view_keys=views)
        if np.isfinite(episode.states).all():
            if explore or (handed_over and policy.takeover is None):
                takeover = len(episode.states)   # no frame of it is a demonstration
            else:
                takeover = policy.takeover if handed_over else 0
            return episode, {"success": episode.success, "success_any": episode.success_any,
                             "policy": "random" if explore else "expert", "noise": noise, "env_task": job.task,
                             "env_seed": env_seed, "job_index": job.index, "attempts": attempt + 1,
                             "mistake": mistake, "detour": detour, "takeover": takeover}
    raise RuntimeError(f"episode job {job.index} ({job.task}): non-finite states in all {job.max_attempts} attempts")


# ----------------------------------------------------------------------------- the collectors

@dataclass
class CollectionStats:
    """What one collector run wrote (resumed runs count only what they added)."""

    items: int  # videos or episodes
    frames: int
    seconds: float  # the collection loop, worker start-up included
    successes: int = 0  # robot logs: episodes that ended in success
    retried: int = 0  # robot logs: episodes re-run after an unstable simulation

    @property
    def frames_per_s(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def control_rate(cfg: DictConfig) -> int:
    """The control rate (fps) shared by `cfg.tasks` with `cfg.env_overrides`."""
    overrides = OmegaConf.to_container(cfg.env_overrides)
    rates = {t: envs.load_task_config(t, **overrides)["control_hz"] for t in cfg.tasks}
    if len(set(rates.values())) != 1:
        raise ValueError(f"tasks must share one control rate for one dataset fps, got {rates}")
    return int(next(iter(rates.values())))


def _env_factory(cfg: DictConfig) -> Callable[[str], gym.Env]:
    overrides = OmegaConf.to_container(cfg.env_overrides)
    if cfg.get("wrist_camera_key"):
        overrides["wrist_camera"] = True
    return partial(envs.make_env, resolution=cfg.resolution, **overrides)


def collect_videos(cfg: DictConfig) -> CollectionStats:
    """Render the videos of the corpus (configs/collect_videos.yaml) that `cfg.output_dir` lacks."""
    fps, out = control_rate(cfg), Path(cfg.output_dir)
    jobs = [VideoJob(index=i, task=cfg.tasks[i % len(cfg.tasks)], seed=cfg.seed, path=str(out / f"video_{i:06d}.mp4"),
                     num_frames=cfg.frames_per_video, fps=fps, expert_prob=cfg.expert_prob,
                     noise_levels=tuple(cfg.noise_levels), segment_steps=tuple(cfg.segment_steps),
                     light_scale=tuple(cfg.light_scale), camera_shift=cfg.camera_shift)
            for i in range(cfg.num_videos)]
    todo = [job for job in jobs if not Path(job.path).exists()]
    log.info("%d videos in %s: %d already written, %d to render with %d workers", len(jobs), out,
             len(jobs) - len(todo), len(todo), cfg.num_workers)
    start, frames = time.perf_counter(), 0
    for n in tqdm(parallel_map(video_job, todo, cfg.num_workers, _env_factory(cfg), envs.make_expert),
                  total=len(todo), desc="videos", unit="video"):
        frames += n
    stats = CollectionStats(len(todo), frames, time.perf_counter() - start)
    log.info("wrote %d videos, %d frames in %.1f s (%.1f frames/s)", stats.items, stats.frames, stats.seconds,
             stats.frames_per_s)
    return stats


def collect_robot_logs(cfg: DictConfig) -> CollectionStats:
    """Append the episodes of configs/collect_robot_logs.yaml that the LeRobot dataset at
    `cfg.output_dir` lacks (episode i is on task i % len(tasks))."""
    missing = [t for t in cfg.tasks if t not in cfg.task_descriptions]
    if missing:
        raise ValueError(f"task_descriptions lacks {missing}")
    fps = control_rate(cfg)
    cameras = {cfg.camera_key: "pixels"} | ({cfg.wrist_camera_key: "wrist_pixels"} if cfg.wrist_camera_key else {})
    writer = LeRobotWriter(cfg.output_dir, fps, robot_log_features(list(cameras), cfg.resolution, fps),
                           robot_type=cfg.robot_type, episodes_per_file=cfg.episodes_per_file)
    total, done = len(cfg.tasks) * cfg.episodes_per_task, writer.num_episodes
    log.info("%d episodes in %s: %d already written, %d to collect with %d workers", total, cfg.output_dir, done,
             max(total - done, 0), cfg.num_workers)
    jobs = [EpisodeJob(index=i, task=cfg.tasks[i % len(cfg.tasks)], seed=cfg.seed,
                       random_fraction=cfg.random_fraction, noise_levels=tuple(cfg.noise_levels),
                       mistake_fraction=cfg.mistake_fraction, mistake_offset=tuple(cfg.mistake_offset),
                       detour_fraction=cfg.detour_fraction, detour_height=tuple(cfg.detour_height))
            for i in range(done, total)]
    start, stats = time.perf_counter(), CollectionStats(len(jobs), 0, 0.0)
    for episode, meta in tqdm(parallel_map(episode_job, jobs, cfg.num_workers, _env_factory(cfg), envs.make_expert),
                              total=len(jobs), desc="episodes", unit="episode"):
        vectors = {STATE_KEY: episode.states, ACTION_KEY: episode.actions,
                   ENVIRONMENT_STATE_KEY: episode.info["environment_state"]}
        frames = {key: episode.frames if view == "pixels" else episode.views[view] for key, view in cameras.items()}
        writer.add_episode(frames, vectors,
                           task=cfg.task_descriptions[meta["env_task"]], metadata=meta)
        stats.frames += len(episode.frames)
        stats.successes += meta["success"]
        stats.retried += meta["attempts"] > 1
    writer.close()
    stats.seconds = time.perf_counter() - start
    log.info("wrote %d episodes, %d frames in %.1f s (%.1f frames/s); %d successful; %d re-run after an "
             "unstable simulation", stats.items, stats.frames, stats.seconds, stats.frames_per_s, stats.successes,
             stats.retried)
    return stats
