"""Tests of the offline world-model report: candidate sampling, regrets, branching from a recorded state
in the simulator, prediction windows, and the script end to end on short Reach episodes."""
import json

import numpy as np
import pytest
import torch

import envs
from vjepa_ac.model_report import (CHOOSERS, CandidateOutcome, EpisodeWindows, candidate_actions, execute_candidates,
                                   mean_interval, record_held_out, state_indices)
from vjepa_ac.state_action import GRIPPER_DIM, ROTATION_DIMS, action_bounds


def test_candidate_actions_sample_like_the_cem():
    low, high = action_bounds(0.05, 0.25)
    actions = candidate_actions(low, high, 200, torch.Generator().manual_seed(0))
    assert actions.shape == (200, 7) and torch.all(actions[0] == 0)
    assert torch.all(actions[:, list(ROTATION_DIMS)] == 0)
    assert set(actions[:, GRIPPER_DIM].tolist()) == {-1.0, 0.0, 1.0}
    assert torch.all(actions[:, :3].abs() <= 0.05) and actions[1:, :3].std() > 0.02
    assert torch.equal(actions, candidate_actions(low, high, 200, torch.Generator().manual_seed(0)))


def test_regrets_of_each_chooser():
    outcome = CandidateOutcome(predicted=np.array([0.3, 0.1, 0.2, 0.4]), planner=np.array([0.4, 0.3, 0.2, 0.1]),
                               encoder=np.array([0.3, 0.2, 0.1, 0.4]), pixels=np.array([0.1, 0.2, 0.3, 0.4]),
                               distances=np.array([0.5, 0.4, 0.1, 0.2]))
    regrets = outcome.regrets()
    assert list(regrets) == list(CHOOSERS)
    assert regrets == pytest.approx({"predictor argmin": 0.3, "planner energy argmin": 0.1,
                                     "encoder argmin, true next frame": 0.0,
                                     "pixels argmin, true next frame": 0.4, "zero action": 0.4,
                                     "random candidate": 0.2})


def test_mean_interval_and_state_indices():
    mean, half = mean_interval(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(half, [1.96 * np.sqrt(2) / np.sqrt(2), 0.0])
    assert state_indices(30, 8).tolist() == [1, 5, 9, 13, 17, 21, 25, 29]
    assert state_indices(3, 8).tolist() == [1, 2]


def test_branching_from_a_recorded_state_replays_the_episode():
    env = envs.make_env("reach", episode_steps=6)
    held = record_held_out(env, seed=300000, expert_noise=0.3, random_action_prob=0.2)
    ep = held.episode
    assert len(held.sim_states) == len(ep.frames) - 1 == 6
    t = 3
    actions = np.stack([ep.actions[t], np.zeros(7, np.float32)])
    frames, distances = execute_candidates(env, held.sim_states[t], actions, "ee_to_target")
    np.testing.assert_array_equal(frames[0], ep.frames[t + 1])    # the recorded step, replayed
    assert distances[0] == ep.info["distances"][t + 1]["ee_to_target"]
    np.testing.assert_array_equal(env.unwrapped.get_sim_state(), held.sim_states[t])   # left where it started

    windows = EpisodeWindows([ep, ep], horizon=2)
    assert len(windows) == 2 * 5 and windows.episode_ids.tolist() == [0] * 5 + [1] * 5
    frames, states, acts = windows[4]
    assert frames.shape == (3, 3, 64, 64) and states.shape == (3, 7) and acts.shape == (2, 7)
    np.testing.assert_array_equal(acts.numpy(), ep.actions[4:6])
    with pytest.raises(ValueError, match="longest prediction horizon"):
        EpisodeWindows([ep], horizon=7)
    env.close()


def test_script_end_to_end(tmp_path, run_script):
    run_script("eval_world_model", ["tasks=[reach]", "episodes=2", "envs.reach.episode_steps=8", "horizon=2",
                                    "states_per_episode=2", "candidates=4", "device=cpu", f"output_dir={tmp_path}"])
    report = json.loads((tmp_path / "model_report.json").read_text())["tasks"]["reach"]
    assert (report["episodes"], report["windows"], report["states"]) == (2, 2 * 7, 4)
    assert len(report["prediction_error"]["predictor"]["mean"]) == 2
    assert set(report["regret_x100"]) == set(CHOOSERS)
    assert all(r["mean"] >= 0 for r in report["regret_x100"].values())
    assert "predictor argmin - encoder argmin, true next frame" in report["regret_x100_paired"]
    assert "| reach | 1 |" in (tmp_path / "model_report.md").read_text()
    assert (tmp_path / "model_report.png").stat().st_size > 0
