"""The OGBench adapter (envs/ogbench.py): our env contract on OGBench's visual single-cube task.

Needs `pip install -e '.[ogbench]'` (.ci/run installs it); skipped without it."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.rollouts import expert_episode
from benchmark_env_checks import check_oracle_rollout_restores_the_simulator

pytest.importorskip("ogbench")
from envs.ogbench import OGBenchEnv  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")   # gymnasium's checker on the held rotation bounds
TASK = "ogbench-visual-cube-single-v0"


@pytest.fixture(scope="module")
def cube():
    env = envs.make_env(TASK)
    yield env
    env.close()


def test_env_checker(cube):
    check_env(cube.unwrapped, skip_render_check=True)


def test_registered_id_and_unknown_names_fail():
    env = gym.make("vjepa_ac/OGBench-v0", task=TASK, resolution=32)
    assert isinstance(env.unwrapped, OGBenchEnv)
    assert env.reset(seed=0)[0]["pixels"].shape == (32, 32, 3)
    env.close()
    with pytest.raises(ValueError, match="unsupported OGBench task 'visual-cube-double-v0'"):
        OGBenchEnv("ogbench-visual-cube-double-v0")
    with pytest.raises(ValueError, match="goals must be one of"):
        OGBenchEnv(TASK, goals="hardest")


def test_same_seed_same_start_and_goal_other_seed_differs(cube):
    obs_a, info_a = cube.reset(seed=3)
    obs_b, info_b = cube.reset(seed=3)
    obs_c, info_c = cube.reset(seed=8)   # the same evaluation task (8 % 5 + 1 = 4), other reset noise
    assert cube.unwrapped.task_id == 4
    assert np.array_equal(obs_a["pixels"], obs_b["pixels"]) and np.array_equal(obs_a["state"], obs_b["state"])
    assert np.array_equal(info_a["goal_pixels"], info_b["goal_pixels"])
    assert not np.array_equal(info_a["object_pos"], info_c["object_pos"])
    np.testing.assert_allclose(info_a["target_pos"], info_c["target_pos"])   # OGBench's task 4 goal
    assert not np.array_equal(info_a["goal_pixels"], obs_a["pixels"])   # the goal image shows another state


def test_evaluation_goal_is_ogbenchs_and_random_goals_vary():
    env = envs.make_env(TASK, goals="random")
    targets = [env.reset(seed=s)[1]["target_pos"] for s in range(3)]
    assert len({tuple(np.round(t, 4)) for t in targets}) == 3
    env.close()
    _, info = envs.make_env(TASK).reset(seed=0, options={"task_id": 2})
    np.testing.assert_allclose(info["target_pos"], [0.50, 0.0, 0.02], atol=1e-6)   # OGBench's task2_vertical1


def test_planner_sees_only_the_robots_own_state(cube):
    obs, info = cube.reset(seed=0)
    sim = cube.unwrapped
    assert set(obs) == {"pixels", "state"}
    np.testing.assert_allclose(obs["state"][:3], sim.ee_pos, atol=1e-6)    # the pinch, not the cube
    assert obs["state"][6] == pytest.approx(sim.gripper_closure) and obs["state"][6] < 0.05   # starts open
    for key in ("is_success", "distances", "environment_state"):    # metrics and privileged baselines only
        assert key in info and key not in obs


def test_expert_places_the_cube_and_success_is_ogbenchs(cube):
    episode = expert_episode(cube, seed=1)
    assert episode.success
    sim = cube.unwrapped
    assert np.linalg.norm(sim.object_pos - sim.target_pos) <= 0.04   # OGBench's own test
    assert sim.is_success() == all(sim.sim._compute_successes())


def test_subgoals_show_the_grasp_the_lift_and_the_release(cube):
    _, info = cube.reset(seed=2)
    sim = cube.unwrapped
    assert sim.goal_reached and len(info["subgoal_pixels"]) >= 3
    features = np.array(sim.subgoal_features)   # pinch xyz, cube xyz, closure
    first, last = features[0], features[-1]
    # the grasp begins open at the cube (shown before the close), the cube is lifted, and the last image has
    # the hand open and clear above the cube at its goal
    assert np.linalg.norm(first[:3] - first[3:6]) < 0.03 and first[5] < 0.025 and first[6] < 0.05
    assert features[:, 5].max() > first[5] + 0.01
    assert np.linalg.norm(last[3:6] - sim.target_pos) < 0.04 and last[6] < 0.1 and last[2] - last[5] > 0.05
    assert sim.subgoal_steps == sorted(sim.subgoal_steps)


def test_oracle_rollout_restores_the_simulator(cube):
    check_oracle_rollout_restores_the_simulator(cube)
