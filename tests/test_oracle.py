"""The PRIVILEGED oracle world model: the simulator (Reach env) as the world model."""
import numpy as np
import pytest
import torch

import envs
from planners import CEM, GradientPlanner
from planners.mpc import run_episode
from planners.oracle import PrivilegedOracleWorldModel


@pytest.fixture(scope="module")
def env():
    env = envs.make_env("reach")
    yield env
    env.close()


def test_rollout_predicts_the_simulator_and_restores_it(env):
    env.reset(seed=1)
    oracle = PrivilegedOracleWorldModel(env)
    before = env.unwrapped.get_sim_state()
    z = oracle.encode(np.zeros((1, 8, 8, 3), np.uint8))
    actions = torch.zeros((3, 2, 7))
    actions[0, :, 0] = 0.05
    actions[1, :, 1] = -0.05
    z_pred = oracle.rollout(z, torch.zeros((1, 7)), actions)
    assert z_pred.shape == (3, 2, 1, z.shape[-1])
    np.testing.assert_array_equal(env.unwrapped.get_sim_state(), before)
    torch.testing.assert_close(oracle.encode(np.zeros((1, 8, 8, 3), np.uint8)), z)
    # Two x-steps of 5 cm move the end-effector (Reach features) by about 10 cm in x, not in y.
    assert 0.07 < float(z_pred[0, 1, 0, 0] - z[0, 0, 0]) < 0.11
    assert abs(float(z_pred[0, 1, 0, 1] - z[0, 0, 1])) < 0.02
    # The prediction is what the real env then does.
    obs, *_ = env.step(actions[1, 0].numpy())
    np.testing.assert_allclose(oracle.encode(obs["pixels"][None])[0, 0].numpy(), z_pred[1, 0, 0].numpy(), atol=1e-6)


def test_goal_images_map_to_their_goal_states(env):
    _, info = env.reset(seed=2)
    oracle = PrivilegedOracleWorldModel(env)
    goal = oracle.encode_goal(info["goal_pixels"][None])
    np.testing.assert_allclose(goal[0, 0].numpy(), env.unwrapped.goal_features, rtol=1e-6)
    assert oracle.privileged and oracle.action_dim == 7 and oracle.resolution is None
    with pytest.raises(ValueError, match="goal and subgoal images only"):
        oracle.encode_goal(np.zeros_like(info["goal_pixels"])[None])


def test_subgoal_images_map_to_their_states():
    env = envs.make_env("pick_place")
    _, info = env.reset(seed=0)
    oracle = PrivilegedOracleWorldModel(env)
    images = [*info["subgoal_pixels"], info["goal_pixels"]]
    z = oracle.encode_goal(np.stack(images))
    expected = [*env.unwrapped.subgoal_features, env.unwrapped.goal_features]
    np.testing.assert_allclose(z[:, 0].numpy(), np.stack(expected), rtol=1e-6)
    env.close()


def test_oracle_cem_reaches_the_goal(env):
    oracle = PrivilegedOracleWorldModel(env)
    planner = CEM(env.action_space.low, env.action_space.high, num_samples=24, num_elites=4, iterations=2,
                  frozen_dims=[3, 4, 5], energy="sum")
    result = run_episode(env, oracle, planner, seed=3, max_steps=10, stop_on_success=True)
    assert result.privileged
    assert result.success_any and result.success_at_end, result.final_distances


def test_env_without_simulator_access_is_rejected():
    class NoSim:
        unwrapped = object()
    with pytest.raises(TypeError, match="get_sim_state"):
        PrivilegedOracleWorldModel(NoSim())


def test_gradient_planner_refuses_the_oracle(env):
    _, info = env.reset(seed=0)
    oracle = PrivilegedOracleWorldModel(env)
    z = oracle.encode(np.zeros((1, 8, 8, 3), np.uint8))
    planner = GradientPlanner(env.action_space.low, env.action_space.high, steps=2, num_restarts=2)
    with pytest.raises(TypeError, match="differentiable"):
        planner.plan(oracle, z, torch.zeros((1, 7)), oracle.encode_goal(info["goal_pixels"][None]))
