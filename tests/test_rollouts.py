"""envs.rollouts: the one recorded-episode loop (collector, demo, probe, expert success rate)."""

import numpy as np
import pytest

envs = pytest.importorskip("envs")
from envs.rollouts import expert_episode, expert_failures, record_episode  # noqa: E402


class ConstantPolicy:
    def __init__(self, action: np.ndarray):
        self.action = action

    def act(self) -> np.ndarray:
        return self.action


@pytest.fixture(scope="module")
def env():
    env = envs.make_env("reach", resolution=32)
    yield env
    env.close()


def test_expert_episode_runs_the_budget_and_records_every_frame(env):
    ep = expert_episode(env, seed=3, info_keys=("ee_pos", "object_pos"))
    steps = env.unwrapped.max_episode_steps
    assert ep.frames.shape == (steps + 1, 32, 32, 3) and ep.frames.dtype == np.uint8
    assert ep.states.shape == ep.actions.shape == (steps + 1, 7) and ep.states.dtype == np.float32
    assert (ep.actions[-1] == 0).all() and ep.goal_pixels.shape == (32, 32, 3)
    assert ep.success == env.unwrapped.is_success() and ep.success_any
    assert ep.info["ee_pos"].shape == (steps + 1, 3)
    np.testing.assert_allclose(ep.info["ee_pos"], ep.states[:, :3], atol=1e-5)  # per frame, not one shared array
    again = expert_episode(env, seed=3)
    assert np.array_equal(again.frames, ep.frames) and np.array_equal(again.actions, ep.actions)


def test_record_episode_clips_actions_and_stops_at_max_steps(env):
    high = env.action_space.high
    ep = record_episode(env, ConstantPolicy(2 * high), seed=0, max_steps=3)
    assert len(ep.frames) == len(ep.states) == len(ep.actions) == 4
    np.testing.assert_array_equal(ep.actions[:3], np.broadcast_to(high, (3, 7)))
    assert len(record_episode(env, ConstantPolicy(high), seed=0, max_steps=0).frames) == 1


def test_expert_failures_lists_failing_seeds(env):
    assert expert_failures(env, [0, 1]) == []  # the reach expert succeeds on every seed
