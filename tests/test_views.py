"""Several camera views as one world model: tokens concatenated, energy averaged over views, the
MPC loop and the benchmark feeding each view its frames and goal images."""
import json

import numpy as np
import pytest
import torch

import envs
from planners.benchmark import run_benchmark
from planners.energy import latent_l1_energy
from planners.oracle import PrivilegedOracleWorldModel
from planners.synthetic import LinearWorldModel
from planners.views import MultiViewWorldModel

SHIPPED = "checkpoints/vjepa_ac_tiny"
WRIST = "checkpoints/vjepa_ac_tiny_wrist"


def two_views() -> tuple[MultiViewWorldModel, LinearWorldModel, LinearWorldModel]:
    front, wrist = LinearWorldModel(seed=0), LinearWorldModel(seed=1)
    return MultiViewWorldModel({"pixels": front, "wrist_pixels": wrist}), front, wrist


def test_tokens_concatenate_and_the_energy_is_the_mean_over_views():
    model, front, wrist = two_views()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 2, 8, 8, 3), dtype=np.uint8)   # [B, V, H, W, 3]
    z = model.encode(frames)
    assert z.shape == (3, 2 * front.num_tokens, front.dim) and model.views == ("pixels", "wrist_pixels")
    torch.testing.assert_close(z[:, :front.num_tokens], front.encode(frames[:, 0]))
    actions = torch.randn(5, 2, 7)
    z_pred = model.rollout(z[:1], torch.zeros(1, 7), actions)
    goal = model.encode_goal(frames[1:2])
    per_view = [latent_l1_energy(m.rollout(z[:1, i * 2:(i + 1) * 2], torch.zeros(1, 7), actions),
                                 goal[:, i * 2:(i + 1) * 2]) for i, m in enumerate((front, wrist))]
    torch.testing.assert_close(latent_l1_energy(z_pred, goal), (per_view[0] + per_view[1]) / 2)


class ReadOnly(LinearWorldModel):
    """A view whose predictor must never run; its goal-state head reads a constant state."""

    def __init__(self, reading: float, **kwargs):
        super().__init__(**kwargs)
        self.reading = reading

    def rollout(self, z, state, actions):
        raise AssertionError("a view of energy weight 0 must not be predicted")

    def decode_state(self, z):
        return torch.full((z.shape[0], 7), self.reading)


class Front(LinearWorldModel):
    def decode_state(self, z):
        return torch.arange(7.0).expand(z.shape[0], -1)


def test_a_view_of_weight_zero_is_read_never_predicted_and_leaves_the_energy_alone():
    front = Front(seed=0)
    model = MultiViewWorldModel({"pixels": front, "wrist_pixels": ReadOnly(0.5, seed=1)},
                                energy_weights={"wrist_pixels": 0.0}, state_dims={"wrist_pixels": [6]})
    frames = np.random.default_rng(0).integers(0, 256, (2, 2, 8, 8, 3), dtype=np.uint8)
    z, goal = model.encode(frames[:1]), model.encode_goal(frames[1:])
    actions = torch.randn(5, 2, 7)
    z_pred = model.rollout(z, torch.zeros(1, 7), actions)
    n = front.num_tokens
    torch.testing.assert_close(z_pred[:, :, n:], z[:, None, n:].expand(5, 2, -1, -1))  # the wrist as observed
    front_only = latent_l1_energy(front.rollout(z[:, :n], torch.zeros(1, 7), actions), goal[:, :n], "sum")
    assert model.token_weights.tolist() == [1.0] * n + [0.0] * n
    torch.testing.assert_close(latent_l1_energy(z_pred, goal, "sum", model.token_weights), front_only)
    # the goal state: the front head's reading with the gripper (dim 6) read by the wrist head
    assert model.decode_state(goal).tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.5]]


def test_view_weights_and_state_dims_are_checked():
    views = {"pixels": Front(), "wrist_pixels": Front(seed=1)}
    with pytest.raises(ValueError, match="one > 0"):
        MultiViewWorldModel(views, energy_weights={"pixels": 0.0, "wrist_pixels": 0.0})
    with pytest.raises(ValueError, match="side_pixels"):
        MultiViewWorldModel(views, state_dims={"side_pixels": [6]})
    with pytest.raises(ValueError, match="first view"):
        MultiViewWorldModel(views, state_dims={"pixels": [6]})
    with pytest.raises(ValueError, match="token_weights"):
        latent_l1_energy(torch.zeros(1, 1, 2, 3), torch.zeros(1, 2, 3), token_weights=torch.ones(3))


def test_the_shipped_wrist_model_reads_the_gripper_over_the_shipped_front_model():
    from planners.factory import load_world_model

    model = load_world_model({"pixels": SHIPPED, "wrist_pixels": {"checkpoint": WRIST, "energy_weight": 0.0,
                                                                  "state_dims": [6]}})
    front, wrist = model.models["pixels"], model.models["wrist_pixels"]
    assert model.energy_weights == {"pixels": 1.0, "wrist_pixels": 0.0} and front.shares_encoder(wrist)
    z = model.encode(np.random.default_rng(0).integers(0, 256, (2, 2, 64, 64, 3), dtype=np.uint8))
    n = z.shape[1] // 2
    state = model.decode_state(z)
    torch.testing.assert_close(state[:, :6], front.decode_state(z[:, :n])[:, :6])
    torch.testing.assert_close(state[:, 6], wrist.decode_state(z[:, n:])[:, 6])
    with pytest.raises(ValueError, match="'checkpoint'"):
        load_world_model({"pixels": SHIPPED, "wrist_pixels": {"path": WRIST}})


def test_views_must_agree_and_the_oracle_is_not_a_view():
    with pytest.raises(ValueError, match=">= 2 views"):
        MultiViewWorldModel({"pixels": LinearWorldModel()})
    with pytest.raises(ValueError, match="action_dim"):
        MultiViewWorldModel({"pixels": LinearWorldModel(), "wrist_pixels": LinearWorldModel(action_dim=6, num_tokens=2)})
    env = envs.make_env("reach")
    with pytest.raises(ValueError, match="oracle"):
        MultiViewWorldModel({"pixels": LinearWorldModel(), "wrist_pixels": PrivilegedOracleWorldModel(env)})
    model, *_ = two_views()
    with pytest.raises(ValueError, match="2 views"):
        model.encode(np.zeros((1, 8, 8, 3), np.uint8))
    env.close()


def config(tmp_path, wrist_camera: bool) -> dict:
    method = {"kind": "planner", "world_model": {"pixels": SHIPPED, "wrist_pixels": SHIPPED}, "goals": "subgoals",
              "planner": {"name": "cem", "horizon": 1, "num_samples": 8, "num_elites": 2, "iterations": 1},
              "env": {"wrist_camera": wrist_camera}}
    return {"envs": {"grasp": {"task": "grasp"}}, "tasks": ["grasp"], "run_methods": ["two_views"],
            "methods": {"two_views": method}, "task_distance": {"grasp": "goal_features_l1"},
            "subgoal_switch": {"mode": "schedule", "steps": [1, 1], "threshold": 0.2, "patience": 3,
                               "min_improvement": 0.05},
            "seed": 0, "episodes": 1, "max_steps": 3, "stop_on_success": False, "videos_per_cell": 1,
            "num_workers": 0, "threads": 1, "device": "cpu", "output_dir": str(tmp_path)}


def test_benchmark_plans_with_front_and_wrist_views_through_subgoals(tmp_path):
    results = run_benchmark(config(tmp_path, wrist_camera=True), tmp_path, envs.make_env, envs.make_expert)
    episode = json.loads((tmp_path / "episodes/grasp/two_views/seed_0.json").read_text())
    assert results["cells"][0]["episodes"] == 1 and not results["cells"][0]["privileged"]
    assert episode["num_goals"] == 3 and episode["switched_at"] == [1, 2]
    assert (tmp_path / "videos/grasp_two_views_seed0.mp4").stat().st_size > 0


def test_a_missing_view_is_named(tmp_path):
    with pytest.raises(ValueError, match="goal_wrist_pixels"):
        run_benchmark(config(tmp_path, wrist_camera=False), tmp_path, envs.make_env, envs.make_expert)
