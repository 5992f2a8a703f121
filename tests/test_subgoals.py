"""Subgoal switching: a fixed schedule, an energy threshold, a plateau; the final goal is kept;
the MPC loop plans toward the subgoal images in order without any success flag."""
import numpy as np
import pytest
import torch

from planners import CEM
from planners.mpc import run_episode
from planners.subgoals import GoalTracker, SubgoalSwitch
from planners.synthetic import LinearWorldModel


def test_schedule_switches_after_the_given_steps():
    tracker = GoalTracker(SubgoalSwitch(mode="schedule", steps=[2, 3]), num_goals=3)
    switched = [tracker.update(step, energy_now=1.0) for step in range(8)]
    assert tracker.switched_at == [2, 5] and tracker.on_final
    assert switched == [False, False, True, False, False, True, False, False]


def test_energy_threshold_is_relative_to_the_subgoals_starting_energy():
    tracker = GoalTracker(SubgoalSwitch(mode="energy", threshold=0.2, patience=10), num_goals=2)
    for step, energy in enumerate([10.0, 6.0, 3.0, 2.5]):
        assert not tracker.update(step, energy)
    assert tracker.update(4, 1.9)  # below 0.2 x 10
    assert tracker.on_final and not tracker.update(5, 0.0)


def test_plateau_moves_on_when_the_energy_stops_improving():
    tracker = GoalTracker(SubgoalSwitch(mode="energy", threshold=0.0, patience=3, min_improvement=0.05), num_goals=2)
    energies = [10.0, 8.0, 7.9, 7.8, 7.85]  # no 5 % improvement on 8.0 for three plans
    assert [tracker.update(s, e) for s, e in enumerate(energies)] == [False, False, False, False, True]


def test_gripper_gate_holds_a_subgoal_until_the_gripper_agrees():
    switch = SubgoalSwitch(mode="schedule", steps=[2], gripper_tolerance=0.2)
    tracker = GoalTracker(switch, num_goals=2)
    assert [tracker.update(s, 1.0, gripper_reached=False) for s in range(4)] == [False] * 4  # due at step 2
    assert tracker.update(4, 1.0, gripper_reached=True) and tracker.switched_at == [4]
    ungated = GoalTracker(SubgoalSwitch(mode="schedule", steps=[2]), num_goals=2)
    assert [ungated.update(s, 1.0, gripper_reached=False) for s in range(3)] == [False, False, True]


def test_planner_reads_whether_the_gripper_did_what_the_goal_shows():
    planner = CEM(-np.ones(7), np.ones(7), num_samples=8, num_elites=2, iterations=1)
    state = lambda closure: torch.tensor([[0, 0, 0, 0, 0, 0, closure]], dtype=torch.float32)
    assert planner.gripper_reached(state(0.0), 0.2)  # no goal state read: nothing to disagree with
    planner.goal_state = state(0.45)  # the goal shows the fingers closed on an object
    assert not planner.gripper_reached(state(0.0), 0.2) and not planner.gripper_reached(state(0.2), 0.2)
    assert planner.gripper_reached(state(0.3), 0.2) and planner.gripper_reached(state(1.0), 0.2)  # closed past
    planner.goal_state = state(0.05)  # the goal shows it open
    assert planner.gripper_reached(state(0.2), 0.2) and not planner.gripper_reached(state(0.3), 0.2)
    planner.reset()
    assert planner.goal_state is None


def test_bad_switch_settings_fail():
    with pytest.raises(ValueError, match="mode"):
        SubgoalSwitch(mode="timer")
    with pytest.raises(ValueError, match="steps"):
        SubgoalSwitch(mode="schedule", steps=[])
    with pytest.raises(ValueError, match="subgoals"):
        GoalTracker(SubgoalSwitch(mode="schedule", steps=[2]), num_goals=3)
    with pytest.raises(ValueError, match="gripper_tolerance"):
        SubgoalSwitch(gripper_tolerance=1.5)


class BandsEnv:
    """A stub env whose frame is the latent itself (LinearWorldModel encodes band colours), with a
    subgoal image; it offers no success flag that planning could read (is_success is always False)."""

    def __init__(self, model: LinearWorldModel):
        import gymnasium

        self.model = model
        self.action_space = gymnasium.spaces.Box(-np.ones(7, np.float32), np.ones(7, np.float32))

    def _image(self, level: float) -> np.ndarray:
        return np.full((4, 4, 3), int(level), np.uint8)

    def reset(self, seed=None):
        self.level = 0.0
        info = {"goal_pixels": self._image(200), "subgoal_pixels": [self._image(100)], "is_success": False}
        return {"pixels": self._image(self.level), "state": np.zeros(7, np.float32)}, info

    def step(self, action):
        self.level = float(np.clip(self.level + 60 * float(action[0]), 0, 255))
        obs = {"pixels": self._image(self.level), "state": np.zeros(7, np.float32)}
        return obs, 0.0, False, False, {"goal_pixels": self._image(200), "is_success": False}


def test_mpc_plans_toward_the_subgoal_then_the_goal():
    model = LinearWorldModel(num_tokens=2, dim=4)
    env = BandsEnv(model)
    planner = CEM(env.action_space.low, env.action_space.high, num_samples=64, num_elites=8, iterations=3,
                  horizon=1, gripper_dim=None)
    goals_seen = []
    real_plan = planner.plan
    planner.plan = lambda wm, z, s, z_goal: goals_seen.append(z_goal.clone()) or real_plan(wm, z, s, z_goal)
    result = run_episode(env, model, planner, seed=0, max_steps=10,
                         subgoals=SubgoalSwitch(mode="schedule", steps=[4]))
    z_sub, z_goal = model.encode(np.stack([env._image(100), env._image(200)]))
    assert result.num_goals == 2 and result.switched_at == [4]
    assert all(torch.equal(z, z_sub[None]) for z in goals_seen[:4])
    assert all(torch.equal(z, z_goal[None]) for z in goals_seen[4:])
    assert [r.goal_index for r in result.records] == [0] * 4 + [1] * 6


def test_mpc_stays_on_a_subgoal_while_the_gripper_disagrees():
    model = LinearWorldModel(num_tokens=2, dim=4)
    env = BandsEnv(model)
    planner = CEM(env.action_space.low, env.action_space.high, num_samples=16, num_elites=4, iterations=1,
                  horizon=1, gripper_dim=None)
    real_plan = planner.plan

    def plan(wm, z, s, z_goal):  # a goal-state reading that shows the gripper closed; the stub's stays open
        actions = real_plan(wm, z, s, z_goal)
        planner.goal_state = torch.tensor([[0, 0, 0, 0, 0, 0, 0.5]])
        return actions

    planner.plan = plan
    gated = run_episode(env, model, planner, seed=0, max_steps=6,
                        subgoals=SubgoalSwitch(mode="schedule", steps=[2], gripper_tolerance=0.2))
    assert gated.switched_at == [] and {r.goal_index for r in gated.records} == {0}
    free = run_episode(env, model, planner, seed=0, max_steps=6, subgoals=SubgoalSwitch(mode="schedule", steps=[2]))
    assert free.switched_at == [2]


def test_subgoals_need_subgoal_images():
    model = LinearWorldModel()
    env = BandsEnv(model)
    env.reset = lambda seed=None: ({"pixels": env._image(0), "state": np.zeros(7, np.float32)},
                                   {"goal_pixels": env._image(200), "is_success": False})
    planner = CEM(env.action_space.low, env.action_space.high, num_samples=8, num_elites=2, iterations=1)
    with pytest.raises(ValueError, match="subgoal_<view>"):
        run_episode(env, model, planner, seed=0, max_steps=2, subgoals=SubgoalSwitch())


def test_a_method_overrides_the_subgoal_switch_config():
    from planners.factory import method_subgoals

    base = {"mode": "energy", "steps": [], "threshold": 0.2, "patience": 3, "min_improvement": 0.05,
            "gripper_tolerance": None}
    assert method_subgoals({"kind": "planner"}, base) is None  # plans toward the final goal alone
    assert method_subgoals({"goals": "subgoals"}, base).gripper_tolerance is None
    switch = method_subgoals({"goals": "subgoals", "subgoal_switch": {"gripper_tolerance": 0.2}}, base)
    assert switch.gripper_tolerance == 0.2 and switch.patience == 3
