"""The benchmark machinery on a stub env (a point that moves by the action): table, JSON schema,
intervals, resumption, config errors. The real benchmark is run by hand, not in CI."""
import json
import math

import gymnasium
import numpy as np
import pytest

from planners.benchmark import markdown_table, run_benchmark, validate_config, wilson_interval


class PointEnv(gymnasium.Env):
    """A point in a 16x16 picture; reach the target within 5 cm. Offers the env contract the
    oracle world model and the benchmark use (sim state, step_physics, features, distances)."""

    def __init__(self, episode_steps: int = 8):
        self.action_space = gymnasium.spaces.Box(
            np.array([-0.05] * 3 + [-0.25] * 3 + [-1], np.float32), np.array([0.05] * 3 + [0.25] * 3 + [1], np.float32))
        self.observation_space = gymnasium.spaces.Dict({
            "pixels": gymnasium.spaces.Box(0, 255, (16, 16, 3), np.uint8),
            "state": gymnasium.spaces.Box(-np.inf, np.inf, (7,), np.float32)})
        self.episode_steps = episode_steps
        self.goal_features, self.goal_pixels = np.zeros(3), self._draw(np.zeros(3))
        self.subgoal_features, self.subgoal_pixels = [], []

    def _draw(self, p: np.ndarray) -> np.ndarray:
        image = np.zeros((16, 16, 3), np.uint8)
        i, j = np.clip((p[:2] * 16 + 8).astype(int), 0, 15)
        image[i, j] = 255
        return image

    def get_sim_state(self):
        return self.p.copy()

    def set_sim_state(self, s):
        self.p = np.array(s)

    def step_physics(self, action):
        self.p = self.p + np.clip(action[:3], -0.05, 0.05)

    def privileged_features(self):
        return self.p.copy()

    def is_success(self) -> bool:
        return bool(np.linalg.norm(self.p - self.target) < 0.05)

    def _obs_info(self):
        obs = {"pixels": self._draw(self.p), "state": np.r_[self.p, 0, 0, 0, 0].astype(np.float32)}
        info = {"goal_pixels": self.goal_pixels, "is_success": self.is_success(),
                "distances": {"ee_to_target": float(np.linalg.norm(self.p - self.target))}}
        return obs, info

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.p = self.np_random.uniform(-0.2, 0.2, 3)
        self.target = self.np_random.uniform(-0.2, 0.2, 3)
        self.goal_features, self.goal_pixels = self.target.copy(), self._draw(self.target)
        midpoint = (self.p + self.target) / 2 + np.array([0.0, 0.0, 0.1])  # a detour via a raised midpoint
        self.subgoal_features, self.subgoal_pixels = [midpoint], [self._draw(midpoint)]
        self.t = 0
        obs, info = self._obs_info()
        return obs, {**info, "subgoal_pixels": self.subgoal_pixels}

    def step(self, action):
        self.step_physics(np.asarray(action))
        self.t += 1
        obs, info = self._obs_info()
        return obs, 0.0, False, self.t >= self.episode_steps, info


def make_point_env(task: str, **config) -> PointEnv:
    return PointEnv(**config)


class PointExpert:
    def __init__(self, env):
        self.env = env

    def act(self):
        return np.r_[np.clip(self.env.target - self.env.p, -0.05, 0.05), 0, 0, 0, 0]


def make_point_expert(env, noise=0.0, rng=None):
    return PointExpert(env)


ORACLE_CEM = {"name": "cem", "horizon": 1, "num_samples": 32, "num_elites": 4, "iterations": 2}


def config(tmp_path, **overrides) -> dict:
    cfg = {
        "envs": {"reach": {"task": "reach", "episode_steps": 8}},
        "tasks": ["reach"],
        "run_methods": ["random", "expert", "oracle_cem"],
        "methods": {
            "random": {"kind": "random"},
            "expert": {"kind": "expert"},
            "oracle_cem": {"kind": "planner", "world_model": "oracle", "planner": ORACLE_CEM},
            "oracle_cem_subgoals": {"kind": "planner", "world_model": "oracle", "planner": ORACLE_CEM,
                                    "goals": "subgoals"},
        },
        "task_distance": {"reach": "ee_to_target"},
        "subgoal_switch": {"mode": "schedule", "steps": [3], "threshold": 0.2, "patience": 3, "min_improvement": 0.05},
        "seed": 0, "episodes": 2, "max_steps": None, "stop_on_success": False, "videos_per_cell": 1,
        "num_workers": 0, "threads": 1, "device": "cpu", "output_dir": str(tmp_path),
    }
    cfg.update(overrides)
    return cfg


def test_wilson_interval_known_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_benchmark_writes_table_json_plot_and_videos(tmp_path):
    results = run_benchmark(config(tmp_path), tmp_path, make_point_env, make_point_expert)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["cells"] == json.loads(json.dumps(results["cells"]))
    cells = {c["method"]: c for c in saved["cells"]}
    assert set(cells) == {"random", "expert", "oracle_cem"}
    for c in cells.values():
        assert c["episodes"] == 2
        lo, hi = c["success_ci95"]
        assert 0 <= lo <= c["success"] <= hi <= 1
        assert (lo, hi) == pytest.approx(wilson_interval(round(c["success"] * 2), 2))
        assert c["plan_s_median"] >= 0 and c["plan_s_p95"] >= c["plan_s_median"]
        assert math.isfinite(c["final_distance_mean"])
    assert cells["expert"]["privileged"] and cells["oracle_cem"]["privileged"] and not cells["random"]["privileged"]
    assert cells["expert"]["success"] == 1.0  # 8 steps of 5 cm reach any target in the 40 cm box
    assert cells["oracle_cem"]["final_distance_mean"] < cells["random"]["final_distance_mean"]
    table = (tmp_path / "results.md").read_text()
    assert "expert (privileged)" in table and "oracle_cem (privileged)" in table and "| reach | random |" in table
    assert (tmp_path / "success.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [
        f"reach_{m}_seed0.{ext}" for m in ("expert", "oracle_cem", "random") for ext in ("mp4", "png")]
    episode = json.loads((tmp_path / "episodes/reach/expert/seed_1.json").read_text())
    assert episode["seed"] == 1 and episode["steps"] == 8 and len(episode["records"]) == 8


def test_subgoal_method_aims_at_the_subgoal_first(tmp_path):
    cfg = config(tmp_path, run_methods=["oracle_cem_subgoals"], videos_per_cell=1)
    run_benchmark(cfg, tmp_path, make_point_env, make_point_expert)
    episode = json.loads((tmp_path / "episodes/reach/oracle_cem_subgoals/seed_0.json").read_text())
    assert episode["num_goals"] == 2 and episode["switched_at"] == [3]  # the schedule: 3 steps on the subgoal
    assert [r["goal_index"] for r in episode["records"]] == [0, 0, 0] + [1] * 5
    assert (tmp_path / "videos/reach_oracle_cem_subgoals_seed0.mp4").stat().st_size > 0


def test_benchmark_resumes_without_rerunning_finished_episodes(tmp_path, monkeypatch):
    cfg = config(tmp_path, run_methods=["random", "expert"], videos_per_cell=0)
    run_benchmark(cfg, tmp_path, make_point_env, make_point_expert)
    done = tmp_path / "episodes/reach/random/seed_0.json"
    before = done.read_text()
    (tmp_path / "episodes/reach/expert/seed_1.json").unlink()            # interrupted
    (tmp_path / "episodes/reach/random/seed_1.json").write_text("{trunc")  # half-written
    ran = []
    import planners.benchmark as benchmark

    real = benchmark.run_job
    monkeypatch.setattr(benchmark, "run_job", lambda cfg, job, *a: ran.append(job) or real(cfg, job, *a))
    results = run_benchmark(cfg, tmp_path, make_point_env, make_point_expert)
    assert sorted((j.method, j.seed) for j in ran) == [("expert", 1), ("random", 1)]
    assert done.read_text() == before
    assert all(c["episodes"] == 2 for c in results["cells"])


def test_benchmark_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="run_methods names 'learned'"):
        validate_config(config(tmp_path, run_methods=["learned"]))
    cfg = config(tmp_path)
    cfg["methods"]["oracle_cem"]["world_model"] = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="methods.oracle_cem.world_model"):
        validate_config(cfg)
    with pytest.raises(ValueError, match="no entry under `envs`"):
        validate_config(config(tmp_path, tasks=["grasp"]))
    cfg = config(tmp_path)
    cfg["methods"]["oracle_cem"]["goals"] = "subgoal"
    with pytest.raises(ValueError, match="methods.oracle_cem.goals"):
        validate_config(cfg)


def test_a_folder_that_is_not_a_checkpoint_fails_before_any_episode(tmp_path, monkeypatch):
    import planners.benchmark as benchmark

    (tmp_path / "not_a_checkpoint").mkdir()
    cfg = config(tmp_path, run_methods=["random", "learned"])
    cfg["methods"]["learned"] = {"kind": "planner", "world_model": str(tmp_path / "not_a_checkpoint"),
                                 "planner": ORACLE_CEM}
    monkeypatch.setattr(benchmark, "run_job", lambda *a: pytest.fail("an episode ran before the check"))
    with pytest.raises(FileNotFoundError, match="methods.learned.world_model.*not_a_checkpoint"):
        run_benchmark(cfg, tmp_path, make_point_env, make_point_expert)


def test_markdown_table_marks_missing_values():
    cell = {"task": "grasp", "method": "random", "privileged": False, "episodes": 2, "success": 0.0,
            "success_ci95": [0.0, 0.658], "success_any": 0.0, "mean_steps_to_success": None,
            "plan_s_median": 0.001, "plan_s_p95": 0.002, "plan_s_mean": None, "final_distance_mean": 0.2,
            "distance_key": "d"}
    row = markdown_table({"cells": [cell]}).splitlines()[-1]
    assert row == "| grasp | random | 0 % [0, 66] (n=2) | 0 % | - | 0.001 / 0.002 / - | 0.200 (d) |"


def test_benchmark_runs_episodes_in_worker_processes(tmp_path):
    cfg = config(tmp_path, run_methods=["expert"], num_workers=2, videos_per_cell=0)
    results = run_benchmark(cfg, tmp_path, make_point_env, make_point_expert)
    assert results["cells"][0]["episodes"] == 2 and results["cells"][0]["success"] == 1.0
