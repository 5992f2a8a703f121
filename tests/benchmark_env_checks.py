"""Checks every benchmark adapter (envs/benchmark_env.py) must pass, shared by tests/test_metaworld_env.py and
tests/test_ogbench_env.py."""
import numpy as np

from planners.oracle import PrivilegedOracleWorldModel


def check_oracle_rollout_restores_the_simulator(env, seed: int = 1) -> None:
    """The privileged oracle rolls candidates out from the current state, leaves the simulator as it found it,
    and predicts what the env then does."""
    obs, _ = env.reset(seed=seed)
    oracle = PrivilegedOracleWorldModel(env)
    before = env.unwrapped.get_sim_state()
    actions = np.random.default_rng(0).uniform(env.action_space.low, env.action_space.high, (4, 3, 7))
    predicted = oracle.rollout(oracle.encode(obs["pixels"][None]), None, actions)
    assert predicted.shape == (4, 3, 1, 7)
    np.testing.assert_array_equal(env.unwrapped.get_sim_state(), before)
    env.step(actions[0, 0])   # the simulator plays the first candidate as predicted
    np.testing.assert_allclose(env.unwrapped.privileged_features(), predicted[0, 0, 0].numpy(), atol=1e-5)
