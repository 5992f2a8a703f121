"""The Meta-World adapter (envs/metaworld.py): our env contract on MT1 tasks, on the stack's mujoco.

Needs `pip install --no-deps metaworld==3.1.1` (.ci/run installs it); skipped without it."""
import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.config import load_task_config
from envs.rollouts import expert_episode
from benchmark_env_checks import check_oracle_rollout_restores_the_simulator

pytest.importorskip("metaworld")
from envs.metaworld import MOCAP_WELD, MetaWorldEnv, import_metaworld  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")   # Meta-World's own deprecation and constant warnings


@pytest.fixture(scope="module")
def reach():
    env = envs.make_env("metaworld-reach-v3")
    yield env
    env.close()


def test_mocap_weld_fix_lets_mt1_build_on_this_mujoco():
    metaworld = import_metaworld()
    mt1 = metaworld.MT1("push-v3", seed=0)
    sim = mt1.train_classes["push-v3"]()
    welds = [i for i in range(sim.model.neq) if sim.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD]
    assert welds and all(np.array_equal(sim.model.eq_data[i, :len(MOCAP_WELD)], MOCAP_WELD) for i in welds)
    sim.close()


def test_env_checker(reach):
    check_env(reach.unwrapped, skip_render_check=True)


def test_any_mt1_task_by_name_and_unknown_names_fail():
    env = envs.make_env("metaworld-drawer-close-v3", resolution=32)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (32, 32, 3)
    env.close()
    assert load_task_config("metaworld-push-v3")["task"] == "metaworld-push-v3"
    with pytest.raises(ValueError, match="unknown Meta-World task 'fly-v3'"):
        MetaWorldEnv("metaworld-fly-v3")
    with pytest.raises(ValueError, match="unknown task"):
        envs.make_env("metaworld-")


def test_same_seed_same_start_and_goal_other_seed_differs(reach):
    obs_a, info_a = reach.reset(seed=3)
    obs_b, info_b = reach.reset(seed=3)
    obs_c, info_c = reach.reset(seed=4)
    assert np.array_equal(obs_a["pixels"], obs_b["pixels"]) and np.array_equal(obs_a["state"], obs_b["state"])
    assert np.array_equal(info_a["goal_pixels"], info_b["goal_pixels"])
    assert not np.array_equal(info_a["target_pos"], info_c["target_pos"])
    assert not np.array_equal(info_a["goal_pixels"], obs_a["pixels"])   # the goal image shows another state


def test_planner_sees_only_the_robots_own_state(reach):
    obs, info = reach.reset(seed=0)
    sim = reach.unwrapped
    assert set(obs) == {"pixels", "state"}
    expected = np.zeros(7, np.float32)
    expected[:3], expected[6] = sim.ee_pos, sim.gripper_closure
    np.testing.assert_allclose(obs["state"], expected, atol=1e-6)   # hand and gripper, no object, no goal
    for key in ("is_success", "distances", "environment_state"):    # metrics and privileged baselines only
        assert key in info and key not in obs


def test_expert_reaches_and_success_is_metaworlds(reach):
    episode = expert_episode(reach, seed=0)
    assert episode.success
    _, mw_info = reach.unwrapped.sim.evaluate_state(reach.unwrapped._mw_obs, np.zeros(4, np.float32))
    assert bool(mw_info["success"]) == episode.success


def test_oracle_rollout_restores_the_simulator(reach):
    check_oracle_rollout_restores_the_simulator(reach)



def test_pick_place_has_grasp_subgoals():
    env = envs.make_env("metaworld-pick-place-v3")
    _, info = env.reset(seed=0)
    sim = env.unwrapped
    # the close begins (fingers open), the object leaves the table, the fingers have closed on it
    assert len(info["subgoal_pixels"]) == 3 and sim.goal_reached
    closure = [f[6] for f in sim.subgoal_features]
    object_z = [f[5] for f in sim.subgoal_features]
    assert closure[0] < 0.1 < closure[1] and object_z[1] > object_z[0] + 0.005
    env.close()


def test_registered_id():
    env = gym.make("vjepa_ac/MetaWorld-v0", task="metaworld-reach-v3")
    assert isinstance(env.unwrapped, MetaWorldEnv)
    env.close()
