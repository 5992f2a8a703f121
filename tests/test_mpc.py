"""The MPC loop on the Reach env: records, timing split, stopping, bad inputs, no privileged input."""
import gymnasium
import numpy as np
import pytest

import envs
from planners import CEM
from planners.media import plot_energies, write_episode_video
from planners.mpc import run_episode
from planners.oracle import PrivilegedOracleWorldModel
from planners.synthetic import LinearWorldModel

PRIVILEGED_INFO = ("ee_pos", "object_pos", "object_quat", "target_pos", "distances")


class CameraOnly(gymnasium.Wrapper):
    """Strips the privileged entries from info and hides the simulator from whoever holds the env."""

    def _strip(self, info):
        return {k: v for k, v in info.items() if k not in PRIVILEGED_INFO}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._strip(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._strip(info)

    @property
    def unwrapped(self):
        raise AssertionError("the learned planning loop must not touch the simulator")


class SmallGoal(gymnasium.Wrapper):
    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "goal_pixels": info["goal_pixels"][::2, ::2]}


@pytest.fixture(scope="module")
def env():
    env = envs.make_env("reach")
    yield env
    env.close()


def cem(env, **kwargs):
    settings = dict(num_samples=16, num_elites=4, iterations=2, frozen_dims=[3, 4, 5], energy="sum") | kwargs
    return CEM(env.action_space.low, env.action_space.high, **settings)


def test_records_and_time_split(env, tmp_path):
    model = LinearWorldModel()
    result = run_episode(CameraOnly(env), model, cem(env), seed=0, max_steps=4, record_frames=True)
    assert result.steps == 4 and len(result.records) == 4 and len(result.frames) == 5
    assert not result.privileged
    for record in result.records:
        assert record.rollout_calls == 2 and record.executed == 1
        assert np.isfinite(record.energy_now) and np.isfinite(record.energy_planned)
        assert record.encode_s > 0 and record.rollout_s > 0 and record.overhead_s > 0
    split = result.time_per_action()
    assert split["total_s"] == pytest.approx(split["encode_s"] + split["rollout_s"] + split["overhead_s"])
    assert model.batch_sizes == [16] * 8  # every iteration's candidates in one rollout call
    write_episode_video(result, tmp_path / "episode.mp4", scale=2)
    plot_energies(result, tmp_path / "energy.png")
    assert (tmp_path / "episode.mp4").stat().st_size > 0 and (tmp_path / "energy.png").stat().st_size > 0


def test_execute_several_actions_per_plan(env):
    result = run_episode(env, LinearWorldModel(), cem(env, horizon=3), seed=0, max_steps=5, execute_steps=2)
    assert result.steps == 5 and [r.executed for r in result.records] == [2, 2, 1]
    with pytest.raises(ValueError, match="execute_steps"):
        run_episode(env, LinearWorldModel(), cem(env), seed=0, execute_steps=3)


def test_stop_on_success_and_success_flags(env):
    oracle = PrivilegedOracleWorldModel(env)
    stopped = run_episode(env, oracle, cem(env), seed=4, max_steps=12, stop_on_success=True)
    assert stopped.success_any and stopped.success_at_end and stopped.steps == stopped.first_success_step
    full = run_episode(env, oracle, cem(env), seed=4, max_steps=stopped.steps + 2)
    assert full.steps == stopped.steps + 2 and full.success_any


def test_same_seed_same_episode(env):
    first, again = (run_episode(env, LinearWorldModel(), cem(env), seed=7, max_steps=3) for _ in range(2))
    assert [r.energy_now for r in first.records] == [r.energy_now for r in again.records]


def test_bad_inputs_fail_clearly(env):
    with pytest.raises(ValueError, match="goal image has shape"):
        run_episode(SmallGoal(env), LinearWorldModel(), cem(env), seed=0, max_steps=1)
    with pytest.raises(ValueError, match="6-D actions but the env's actions are 7-D"):
        run_episode(env, LinearWorldModel(action_dim=6), cem(env), seed=0, max_steps=1)
    low, high = env.action_space.low[:6], env.action_space.high[:6]
    with pytest.raises(ValueError, match="planner's action bounds are 6-D"):
        run_episode(env, LinearWorldModel(), CEM(low, high, num_samples=8, num_elites=2, gripper_dim=None), seed=0)


def test_learned_world_model_resolution_must_match_the_camera(env):
    from vjepa_ac import WorldModel

    spec = {"encoder": {"patch_size": 8, "crop_size": 32, "frames_per_clip": 2, "tubelet_size": 2,
                        "hidden_size": 48, "num_attention_heads": 2, "num_hidden_layers": 1},
            "pool": 2, "predictor": {"dim": 48, "depth": 1, "heads": 2}}
    with pytest.raises(ValueError, match="world model encodes 32x32 frames"):
        run_episode(env, WorldModel.from_config(spec), cem(env), seed=0, max_steps=1)
    spec["encoder"]["crop_size"] = env.observation_space["pixels"].shape[0]
    result = run_episode(CameraOnly(env), WorldModel.from_config(spec), cem(env), seed=0, max_steps=2)
    assert result.steps == 2 and all(np.isfinite(r.energy_now) for r in result.records)
