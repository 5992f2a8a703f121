"""Tests of the manipulation envs: API contract, determinism, clone/restore, bounds, predicates, experts."""

import gymnasium
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import rendering
from envs.benchmark_env import GraspPhases
from envs.tasks import Grasp

TASKS = list(envs.TASK_IDS)


@pytest.fixture(scope="module")
def grasp_env():
    env = envs.make_env("grasp")
    yield env
    env.close()


def run_expert(env, steps=None):
    u = env.unwrapped
    expert = envs.make_expert(env)
    for _ in range(steps or u.max_episode_steps):
        u.step_physics(expert.act())


@pytest.mark.parametrize("task", TASKS)
def test_contract_and_check_env(task):
    env = gymnasium.make(envs.TASK_IDS[task])
    obs, info = env.reset(seed=3)
    assert obs["pixels"].dtype == np.uint8 and obs["pixels"].shape == (64, 64, 3)
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (7,)
    assert env.observation_space.contains(obs)
    assert info["goal_pixels"].shape == (64, 64, 3) and isinstance(info["is_success"], bool)
    assert {"ee_pos", "object_pos", "object_quat", "target_pos", "distances", "action_clipped"} <= set(info)
    u = env.unwrapped
    assert u.goal_reached, "the goal-making expert run must succeed"
    assert u.goal_features.shape == u.privileged_features().shape
    check_env(env.unwrapped)
    env.close()


def test_reset_is_deterministic(grasp_env):
    obs_a, info_a = grasp_env.reset(seed=11)
    state_a = grasp_env.unwrapped.get_sim_state()
    grasp_env.reset(seed=12)
    obs_b, info_b = grasp_env.reset(seed=11)
    np.testing.assert_array_equal(obs_a["pixels"], obs_b["pixels"])
    np.testing.assert_array_equal(obs_a["state"], obs_b["state"])
    np.testing.assert_array_equal(info_a["goal_pixels"], info_b["goal_pixels"])
    np.testing.assert_array_equal(state_a, grasp_env.unwrapped.get_sim_state())
    obs_c, _ = grasp_env.reset(seed=12)
    assert not np.array_equal(obs_a["pixels"], obs_c["pixels"])


def test_goal_is_the_expert_end_state(grasp_env):
    """Replaying the noiseless expert from the reset state reproduces the recorded goal exactly."""
    obs, info = grasp_env.reset(seed=5)
    u = grasp_env.unwrapped
    assert np.linalg.norm(u.object_pos[2] - u.object_rest_z) < 0.005   # reset restored the start
    run_expert(grasp_env)
    np.testing.assert_array_equal(u.privileged_features(), u.goal_features)
    np.testing.assert_array_equal(u.render(), info["goal_pixels"])


def test_sim_state_round_trip(grasp_env):
    grasp_env.reset(seed=2)
    u = grasp_env.unwrapped
    start = u.get_sim_state()
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 7)) * grasp_env.action_space.high
    for a in actions:
        u.step_physics(a)
    end, pixels = u.get_sim_state(), u.render()
    grasp_env.reset(seed=9)                 # a different episode: other object, size, colour
    u.set_sim_state(start)
    for a in actions:
        u.step_physics(a)
    np.testing.assert_array_equal(end, u.get_sim_state())
    np.testing.assert_array_equal(pixels, u.render())
    with pytest.raises(ValueError, match="sim state must have shape"):
        u.set_sim_state(start[:-1])


def test_step_matches_step_physics(grasp_env):
    grasp_env.reset(seed=4)
    u = grasp_env.unwrapped
    start = u.get_sim_state()
    action = np.array([0.02, -0.01, -0.03, 0.0, 0.0, 0.1, 0.5], np.float32)
    obs, reward, terminated, truncated, info = grasp_env.step(action)
    after_step = u.get_sim_state()
    u.set_sim_state(start)
    u.step_physics(action)
    np.testing.assert_array_equal(after_step, u.get_sim_state())
    assert not terminated and not truncated and not info["action_clipped"]


def test_state_follows_delta_actions(grasp_env):
    """next state ~= state + action for in-bound moves (the planners integrate it this way)."""
    obs, _ = grasp_env.reset(seed=1)
    action = np.array([0.03, -0.04, 0.02, 0.0, 0.0, 0.15, 0.0], np.float32)
    for _ in range(2):   # second step: the servos have settled from the first
        prev = obs["state"]
        obs, *_ = grasp_env.step(action)
    np.testing.assert_allclose(obs["state"][:3] - prev[:3], action[:3], atol=0.006)
    np.testing.assert_allclose(obs["state"][5] - prev[5], action[5], atol=0.02)
    np.testing.assert_allclose(obs["state"][3:5], 0.0, atol=0.02)


def test_out_of_range_actions_are_clipped(grasp_env):
    obs, _ = grasp_env.reset(seed=6)
    start = obs["state"]
    obs, _, _, _, info = grasp_env.step(np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32))
    assert info["action_clipped"]
    moved = obs["state"][0] - start[0]
    assert 0.03 < moved < grasp_env.unwrapped.cfg["max_pos_delta"] + 0.005


@pytest.mark.parametrize("action, message", [
    (np.full(7, np.nan), "finite"),
    (np.array([0, 0, np.inf, 0, 0, 0, 0]), "finite"),
    (np.zeros(6), "shape"),
    (np.zeros((1, 7)), "shape"),
    (np.array(["a"] * 7), "finite"),
])
def test_bad_actions_raise(grasp_env, action, message):
    grasp_env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        grasp_env.step(action)
    with pytest.raises(ValueError, match=message):
        grasp_env.unwrapped.step_physics(action)


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="valid tasks"):
        envs.make_env("stack")
    with pytest.raises(ValueError, match="valid keys.*resolution"):
        gymnasium.make("vjepa_ac/Reach-v0", resolutoin=64)
    with pytest.raises(ValueError, match="object_types"):
        gymnasium.make("vjepa_ac/Reach-v0", object_types=["sphere"])


def test_reach_predicate(grasp_env):
    env = envs.make_env("reach")
    env.reset(seed=0)
    u = env.unwrapped
    u.target_pos = u.ee_pos + np.array([0.0, 0.0, 0.049])
    assert u.is_success()
    u.target_pos = u.ee_pos + np.array([0.0, 0.051, 0.0])
    assert not u.is_success()
    env.close()


def _set_object(u, pos):
    q = u.h.object_qpos
    u.data.qpos[q:q + 3] = pos
    u.data.qvel[u.h.object_dof:u.h.object_dof + 6] = 0
    mujoco.mj_forward(u.model, u.data)


def test_grasp_and_reach_with_object_predicates():
    env = envs.make_env("reach_with_object")
    env.reset(seed=0)
    u = env.unwrapped
    grasp = Grasp(envs.load_task_config("grasp"))
    assert u.is_grasped()
    u.target_pos = u.object_pos + np.array([0.03, 0.0, 0.0])
    assert u.is_success()                            # held and within 5 cm
    assert grasp.is_success(u)                       # held, high above its rest height
    u.target_pos = u.object_pos + np.array([0.0, 0.0, 0.06])
    assert not u.is_success()                        # too far
    _set_object(u, u.ee_pos + np.array([0.0, 0.2, 0.0]))   # lifted, but out of the hand
    assert not u.is_grasped() and not grasp.is_success(u)
    env.close()


def test_pick_place_predicate():
    env = envs.make_env("pick_place")
    env.reset(seed=0)
    u = env.unwrapped
    u.target_pos = u.object_pos.copy()
    assert u.ee_pos[2] > 0.15 and u.is_success()         # resting on the table at the target, released
    _set_object(u, u.object_pos + np.array([0.0, 0.0, 0.03]))
    assert not u.is_success()                            # in the air
    _set_object(u, u.target_pos + np.array([0.06, 0.0, 0.0]))
    assert not u.is_success()                            # resting but 6 cm away
    env.close()


@pytest.mark.parametrize("task", TASKS)
def test_expert_solves_a_few_seeds(task):
    env = envs.make_env(task)
    for seed in range(3):
        env.reset(seed=100 + seed)
        run_expert(env)
        assert env.unwrapped.is_success(), f"{task} seed {100 + seed}"
    env.close()


def test_expert_with_mistakes_closes_beside_the_object_then_recovers_as_the_expert():
    env = envs.make_env("pick_place")
    u, missed = env.unwrapped, 0
    for seed in range(3):
        env.reset(seed=200 + seed)
        rng = np.random.default_rng(seed)
        policy = envs.ExpertWithMistakes(envs.make_expert(env, rng=rng), (0.02, 0.04), rng)
        offset = policy.expert.grasp_offset.copy()
        assert 0.02 <= np.linalg.norm(offset) <= 0.04 and offset[2] == 0
        for step in range(u.max_episode_steps):
            if policy.takeover is not None and policy.takeover == step - 1:
                missed += not u.is_grasped()
            env.step(policy.act())
        assert policy.takeover is not None and 0 < policy.takeover < u.max_episode_steps
        assert (policy.expert.grasp_offset == 0).all()            # the expert's own grasp after the takeover
        assert u.is_success(), f"seed {200 + seed}"
    assert missed >= 1   # the mistaken close caught nothing at least once, and the expert recovered
    env.close()


def test_expert_with_detour_goes_above_the_object_then_reaches_as_the_expert():
    env = envs.make_env("reach")
    u = env.unwrapped
    for seed in range(3):
        env.reset(seed=300 + seed)
        rng = np.random.default_rng(seed)
        policy = envs.ExpertWithDetour(envs.make_expert(env, rng=rng), (0.04, 0.1), rng)
        start = np.linalg.norm(u.ee_pos - u.object_pos)
        arrived = None
        for step in range(u.max_episode_steps):
            action = policy.act()
            if policy.takeover == step:   # this step's action is the expert's own: where the detour ended
                arrived = u.ee_pos - u.object_pos
                assert policy.expert.waypoint is None
            env.step(action)
        assert policy.takeover is not None and 0 < policy.takeover < u.max_episode_steps
        assert np.linalg.norm(arrived[:2]) < 0.03 and 0.02 < arrived[2] < 0.12 and np.linalg.norm(arrived) < start
        assert u.is_success(), f"seed {300 + seed}"
    env.close()


def test_grasped_object_does_not_slip(grasp_env):
    grasp_env.reset(seed=7)
    u = grasp_env.unwrapped
    run_expert(grasp_env)
    offset = u.object_pos - u.ee_pos
    for step in range(6):       # fast moves up, sideways and back
        u.step_physics(np.array([0.05 * (-1) ** (step // 3), 0.05, 0.03 * (-1) ** (step // 2), 0, 0, 0, 0]))
    assert u.is_grasped()
    assert np.linalg.norm(u.object_pos - u.ee_pos - offset) < 0.01


def test_resolution_256_and_wrist_camera():
    env = envs.make_env("reach", resolution=256, wrist_camera=True)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (256, 256, 3) and obs["wrist_pixels"].shape == (256, 256, 3)
    assert info["goal_wrist_pixels"].shape == (256, 256, 3)
    assert obs["pixels"].std() > 10 and obs["wrist_pixels"].std() > 1
    np.testing.assert_array_equal(env.render(), obs["pixels"])
    env.close()


def test_gl_backend_fallback(monkeypatch):
    monkeypatch.delitem(__import__("sys").modules, "mujoco")   # pretend mujoco is not bound yet
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    only_osmesa = lambda name: "libOSMesa.so" if name == "OSMesa" else None  # noqa: E731
    monkeypatch.setattr(rendering.ctypes.util, "find_library", only_osmesa)
    assert rendering.select_gl_backend() == "osmesa"
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setattr(rendering.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(RuntimeError, match="MUJOCO_GL=egl.*MUJOCO_GL=osmesa"):
        rendering.select_gl_backend()


def _random_episodes_are_stable(task: str, episodes: int) -> None:
    """Noisy expert then uniformly random actions (gripper included): no solver blow-up, no flying objects."""
    env = envs.make_env(task)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    for seed in range(episodes):
        env.reset(seed=seed)
        expert = envs.make_expert(env, noise=0.3, rng=rng)
        for step in range(40):
            action = expert.act() if step < 15 else rng.uniform(-1, 1, 7) * env.action_space.high
            u.step_physics(action)
            speed = np.linalg.norm(u.data.qvel[u.h.object_dof:u.h.object_dof + 3])
            assert speed < 8.0, f"{task} seed {seed} step {step}: object speed {speed:.1f} m/s"
        assert u.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0, f"{task} seed {seed}: unstable"
    env.close()


def test_random_actions_are_stable():
    _random_episodes_are_stable("grasp", episodes=4)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["grasp", "reach_with_object", "pick_place"])
def test_random_actions_are_stable_many_episodes(task):
    _random_episodes_are_stable(task, episodes=60)


@pytest.mark.parametrize("task, count", [("reach", 1), ("grasp", 2), ("reach_with_object", 1), ("pick_place", 5)])
def test_subgoals_are_expert_states_in_order(task, count):
    """Every task has subgoal images that differ from the goal; replaying the noiseless expert passes
    through each subgoal's state, in order, at the step it was taken."""
    env = envs.make_env(task, wrist_camera=True)
    obs, info = env.reset(seed=1)
    u = env.unwrapped
    assert len(info["subgoal_pixels"]) == len(info["subgoal_wrist_pixels"]) == len(u.subgoal_features) == count
    assert u.subgoal_steps == sorted(set(u.subgoal_steps)) and u.subgoal_steps[-1] < u.max_episode_steps
    for image in info["subgoal_pixels"]:
        assert not np.array_equal(image, info["goal_pixels"])
    expert = envs.make_expert(env)
    for step in range(1, u.subgoal_steps[-1] + 1):
        u.step_physics(expert.act())
        if step in u.subgoal_steps:
            i = u.subgoal_steps.index(step)
            # held-object contacts replay to ~1e-9 m after the reset's state restore, not bit for bit
            np.testing.assert_allclose(u.privileged_features(), u.subgoal_features[i], atol=1e-6)
            assert np.abs(u.render().astype(int) - info["subgoal_pixels"][i]).max() <= 1
            assert np.abs(u._render_camera("wrist").astype(int) - info["subgoal_wrist_pixels"][i]).max() <= 1
    env.close()


def test_subgoal_states():
    grasp = envs.make_env("grasp")
    grasp.reset(seed=1)
    u = grasp.unwrapped
    (open_ee, open_obj, open_closure), (_, closed_obj, closed_closure) = \
        [(f[:3], f[3:6], f[6]) for f in u.subgoal_features]   # features: ee (3), object (3), closure
    assert np.linalg.norm(open_ee[:2] - open_obj[:2]) < 0.02 and open_closure < 0.1
    assert closed_closure > open_closure and closed_obj[2] - u.object_rest_z < 0.01
    pick_place = envs.make_env("pick_place")
    pick_place.reset(seed=1)
    u = pick_place.unwrapped
    _, _, lifted, above, lowered = u.subgoal_features
    assert lifted[5] > u.object_rest_z + 0.05
    np.testing.assert_allclose(above[3:5], u.target_pos[:2], atol=0.02)
    assert lowered[5] - u.object_rest_z < 0.01 and lowered[6] > 0.1      # closed on it (a wide object: ~0.25)
    for env in (grasp, pick_place):
        env.close()


def test_missed_subgoal_fails_the_reset():
    env = envs.make_env("pick_place", episode_steps=8)   # too short to reach the target
    with pytest.raises(RuntimeError, match="did not reach subgoal .*above_target"):
        env.reset(seed=1)
    env.close()


def test_camera_visibility():
    """The workspace camera shows the object >= 10 px wide (median) where front shows ~4 px."""
    env = envs.make_env("grasp")
    table = rendering.camera_visibility(env, ["front", "workspace", "wrist"], seeds=list(range(5)))
    assert np.median(table["front"]["width"]) < 6 <= 10 <= np.median(table["workspace"]["width"])
    for camera in ("front", "workspace"):
        np.testing.assert_allclose(table[camera]["visible_at_reset"], 1.0, atol=0.05)   # nothing in front of it
        assert 0.5 < np.median(table[camera]["visible_in_goal"]) < 1.0                    # partly behind the fingers
    u = env.unwrapped
    env.reset(seed=0)
    _set_object(u, u.object_pos - np.array([0.0, 0.0, 0.08]))    # inside the table: hidden
    hidden = u.object_visibility("workspace")
    assert hidden.pixels == 0 and hidden.unoccluded > 0 and hidden.visible_fraction == 0.0
    env.close()


def test_grasp_phases_of_a_pick_and_place_run():
    """The subgoal phases a benchmark adapter takes from its scripted policy (envs/metaworld.py, envs/ogbench.py):
    a synthetic run that descends, closes on the object, lifts it, releases it and rises."""
    phases = GraspPhases(closure=0.0, object_z=0.02)
    #        (closing, closure, object z, hand z, control-step end)
    run = [(False, 0.0, 0.02, 0.10, True),    # descending, open: nothing
           (True, 0.2, 0.02, 0.03, True),     # the close begins
           (True, 0.38, 0.02, 0.03, True),    # still closing
           (True, 0.385, 0.02, 0.03, False),  # stopped, but not a control step's end yet
           (True, 0.385, 0.02, 0.03, True),   # stopped: the grasp is made
           (True, 0.385, 0.05, 0.06, True),   # the object leaves the table
           (False, 0.2, 0.02, 0.03, True),    # the release begins
           (False, 0.0, 0.02, 0.05, True),    # rising, not yet clear
           (False, 0.0, 0.02, 0.09, True),    # clear of the object
           (False, 0.0, 0.02, 0.20, True)]    # nothing more
    events = [phases.update(*step) for step in run]
    assert events == [[], ["flip"], [], [], ["settled"], ["lift"], ["flip"], [], ["clear"], []]
    again = GraspPhases(closure=0.0, object_z=0.02)   # an open-close-open before any lift is no release
    assert [again.update(c, 0.0, 0.02, 0.2, True) for c in (True, False)] == [["flip"], ["flip"]]
