"""Planners on a linear latent world model whose optimum is known (planners/synthetic.py)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from planners import CEM, MPPI, GradientPlanner, NonFiniteEnergyError, RandomShooting, latent_l1_energy
from planners.synthetic import LinearWorldModel

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LOW = np.array([-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, -1.0], dtype=np.float32)
HIGH = -LOW
HALF = torch.from_numpy(HIGH)
# Inside the bounds, gripper at a category value (low: open fully); rotation held at zero, as
# the reference planner does (frozen_dims=[3, 4, 5] below).
TARGET = torch.tensor([0.03, -0.02, 0.01, 0.0, 0.0, 0.0, -1.0])
ROTATION = [3, 4, 5]


def problem(target=TARGET, **kwargs):
    """A world model, z_now, state and z_goal such that the 'sum' energy is minimised by [target, 0]."""
    model = LinearWorldModel(scale=HIGH, **kwargs)
    z_now = torch.randn((1, model.num_tokens, model.dim), generator=torch.Generator().manual_seed(1))
    z_goal = z_now + model.latent_step(target)[None]
    return model, z_now, torch.zeros((1, 7)), z_goal


def optimum(target=TARGET):
    return torch.stack([target, torch.zeros(7)])


def test_energy_final_and_sum():
    z_goal = torch.zeros((1, 1, 2))
    z_pred = torch.tensor([[[[1.0, 3.0]], [[0.0, -2.0]]]])  # B=1, H=2, N=1, D=2
    assert latent_l1_energy(z_pred, z_goal, "final").tolist() == [1.0]
    assert latent_l1_energy(z_pred, z_goal, "sum").tolist() == [3.0]
    with pytest.raises(ValueError, match="goal embedding"):
        latent_l1_energy(z_pred, torch.zeros((1, 1, 3)))


def test_cem_finds_known_optimum():
    model, z, s, g = problem()
    planner = CEM(LOW, HIGH, horizon=2, num_samples=400, num_elites=10, iterations=10, energy="sum", frozen_dims=ROTATION, seed=0)
    plan = planner.plan(model, z, s, g)
    assert plan.shape == (2, 7)
    assert torch.all((plan - optimum()).abs() <= 0.05 * HALF), (plan, optimum())
    assert plan[0, 6] == -1.0 and plan[1, 6] == 0.0  # gripper categories: open fully, then hold


def test_mppi_finds_known_optimum():
    model, z, s, g = problem()
    planner = MPPI(LOW, HIGH, horizon=2, num_samples=400, iterations=10, temperature=0.05, energy="sum", frozen_dims=ROTATION, seed=0)
    plan = planner.plan(model, z, s, g)
    assert torch.all((plan - optimum()).abs() <= 0.15 * HALF), (plan, optimum())


def test_gradient_finds_known_optimum():
    # The gripper is continuous for the gradient planner; tanh keeps it off the bounds, so aim inside.
    target = TARGET.clone()
    target[6] = 0.4
    model, z, s, g = problem(target)
    planner = GradientPlanner(LOW, HIGH, horizon=2, num_restarts=4, steps=50, lr=0.05, energy="sum", frozen_dims=ROTATION, seed=0)
    plan = planner.plan(model, z, s, g)
    assert torch.all((plan - optimum(target)).abs() <= 0.05 * HALF), (plan, optimum(target))


def test_random_shooting_beats_doing_nothing():
    model, z, s, g = problem()
    planner = RandomShooting(LOW, HIGH, horizon=2, num_samples=200, energy="sum", seed=0)
    plan = planner.plan(model, z, s, g)
    energy = lambda a: float(latent_l1_energy(model.rollout(z, s, a[None]), g, "sum"))
    assert energy(plan) < energy(torch.zeros((2, 7)))
    assert model.batch_sizes == [200, 1, 1]


def test_cem_respects_bounds_and_frozen_dims():
    # The optimum lies outside the bounds in x and has non-zero rotation, which is frozen.
    target = torch.tensor([0.15, -0.02, 0.0, 0.2, -0.2, 0.1, 0.0])
    model, z, s, g = problem(target)
    planner = CEM(LOW, HIGH, horizon=2, num_samples=100, num_elites=10, iterations=5, frozen_dims=[3, 4, 5], seed=0)
    plan = planner.plan(model, z, s, g)
    candidates = torch.cat(model.seen_actions)
    assert torch.all(candidates >= torch.from_numpy(LOW)) and torch.all(candidates <= HALF)
    assert torch.all(candidates[..., 3:6] == 0) and torch.all(plan[:, 3:6] == 0)
    assert torch.all(plan >= torch.from_numpy(LOW)) and torch.all(plan <= HALF)
    assert plan[:, 0].sum() >= 0.09  # pushed against the +5 cm bound on both steps (final energy)


def test_cem_batches_each_iteration_into_one_rollout_call():
    model, z, s, g = problem()
    planner = CEM(LOW, HIGH, num_samples=64, num_elites=8, iterations=3, seed=0)
    planner.plan(model, z, s, g)
    assert model.batch_sizes == [64, 64, 64]
    assert planner.stats["rollout_calls"] == 3 and planner.stats["candidates"] == 192


@pytest.mark.parametrize("make", [
    lambda seed: CEM(LOW, HIGH, num_samples=50, num_elites=5, iterations=3, seed=seed),
    lambda seed: MPPI(LOW, HIGH, num_samples=50, iterations=3, seed=seed),
    lambda seed: RandomShooting(LOW, HIGH, num_samples=50, seed=seed),
    lambda seed: GradientPlanner(LOW, HIGH, num_restarts=3, steps=5, seed=seed),
])
def test_deterministic_under_seed(make):
    model, z, s, g = problem()
    first, again, other = (make(seed).plan(model, z, s, g) for seed in (3, 3, 4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    planner = make(3)
    planner.plan(model, z, s, g)
    planner.reset()
    assert torch.equal(planner.plan(model, z, s, g), first)


def test_warm_start_shifts_previous_solution():
    model, z, s, g = problem()
    planner = CEM(LOW, HIGH, horizon=3, num_samples=50, num_elites=5, iterations=2, seed=0)
    plan = planner.plan(model, z, s, g)
    planner.shift(1)
    assert torch.equal(planner.previous[:2], plan[1:]) and torch.equal(planner.previous[2], torch.zeros(7))
    planner.shift(3)
    assert planner.previous is None


def test_non_finite_candidates_are_skipped():
    model, z, s, g = problem(nan_fraction=0.25)
    planner = CEM(LOW, HIGH, horizon=2, num_samples=400, num_elites=10, iterations=10, energy="sum", frozen_dims=ROTATION, seed=0)
    plan = planner.plan(model, z, s, g)
    assert planner.stats["skipped_nonfinite"] == 10 * 100
    assert torch.isfinite(plan).all()
    assert torch.all((plan - optimum()).abs() <= 0.05 * HALF)


@pytest.mark.parametrize("planner", [
    CEM(LOW, HIGH, num_samples=20, num_elites=5, iterations=2),
    MPPI(LOW, HIGH, num_samples=20),
    GradientPlanner(LOW, HIGH, steps=2),
])
def test_all_non_finite_fails_clearly(planner):
    model, z, s, g = problem(nan_fraction=1.0)
    with pytest.raises(NonFiniteEnergyError, match="non-finite"):
        planner.plan(model, z, s, g)


def test_mismatched_inputs_fail_clearly():
    model, z, s, g = problem()
    planner = CEM(LOW[:6], HIGH[:6], num_samples=20, num_elites=5, iterations=1, gripper_dim=None)
    with pytest.raises(ValueError, match="7-D actions.*6-D"):
        planner.plan(model, z, s, g)
    planner = CEM(LOW, HIGH, num_samples=20, num_elites=5, iterations=1)
    with pytest.raises(ValueError, match="goal image of another size"):
        planner.plan(model, z, s, torch.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="frozen_dims"):
        CEM(LOW, HIGH, frozen_dims=[7])


def test_gradient_planner_rejects_non_differentiable_model():
    class NoGrad(LinearWorldModel):
        @torch.no_grad()
        def rollout(self, z, state, actions):
            return super().rollout(z, state, actions)

    model = NoGrad(scale=HIGH)
    z = torch.zeros((1, 2, 4))
    with pytest.raises(TypeError, match="differentiable"):
        GradientPlanner(LOW, HIGH, steps=2).plan(model, z, torch.zeros((1, 7)), z)


def test_energy_grid_minimum_is_the_optimum():
    from planners.landscape import energy_grid

    target = torch.zeros(7)
    target[0], target[1] = 0.025, -0.05
    model, z, s, g = problem(target)
    energies, xs, ys = energy_grid(model, z, s, g, dims=[0, 1], low=LOW, high=HIGH, grid_size=21, batch_size=100)
    i, j = np.unravel_index(energies.argmin(), energies.shape)
    assert energies.shape == (21, 21) and (xs[i], ys[j]) == pytest.approx((0.025, -0.05))
    assert model.batch_sizes == [100] * 4 + [41]


def test_planner_configs_build_and_bad_configs_fail_clearly():
    from gymnasium.spaces import Box
    from omegaconf import OmegaConf

    from planners.factory import PLANNERS, load_world_model, make_planner

    space = Box(LOW, HIGH)
    for name, cls in PLANNERS.items():
        cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "planner" / f"{name}.yaml"))
        assert type(make_planner(cfg, space)) is cls
    with pytest.raises(ValueError, match="not one of"):
        make_planner({"name": "cme"}, space)
    with pytest.raises(ValueError, match="num_sample"):
        make_planner({"name": "cem", "num_sample": 10}, space)
    with pytest.raises(FileNotFoundError, match="no/such/dir"):
        load_world_model("no/such/dir")


def test_action_cost_prefers_staying_when_no_move_helps():
    # Actions barely move the latent (huge scale): every candidate's energy is the same up to noise,
    # so without a cost CEM returns some arbitrary move; with one it stays near the rest action.
    model = LinearWorldModel(scale=1e6)
    z = torch.randn((1, 2, 4), generator=torch.Generator().manual_seed(0))
    goal = z + 1.0
    motion = {}
    for cost in (0.0, 0.1):
        planner = CEM(LOW, HIGH, horizon=2, num_samples=200, num_elites=10, iterations=5, frozen_dims=ROTATION,
                      action_cost=cost, seed=0)
        plan = planner.plan(model, z, torch.zeros((1, 7)), goal)
        motion[cost] = float((plan[:, :3].abs() / HALF[:3]).mean())
    assert motion[0.1] < 0.1 < motion[0.0], motion


def test_small_action_cost_keeps_the_optimum():
    model, z, s, g = problem()
    planner = CEM(LOW, HIGH, horizon=2, num_samples=400, num_elites=10, iterations=10, energy="sum", frozen_dims=ROTATION,
                  action_cost=0.005, seed=0)
    plan = planner.plan(model, z, s, g)
    assert torch.all((plan - optimum()).abs() <= 0.05 * HALF), (plan, optimum())
    with pytest.raises(ValueError, match="action_cost"):
        CEM(LOW, HIGH, action_cost=-1.0)


def test_keep_best_returns_the_warm_start_when_no_candidate_beats_it():
    model, z, s, g = problem()
    planner = CEM(LOW, HIGH, horizon=2, num_samples=16, num_elites=4, iterations=2, energy="sum", frozen_dims=ROTATION,
                  keep_best=True, seed=0)
    planner.previous = optimum().clone()  # the known optimum as the warm start
    torch.testing.assert_close(planner.plan(model, z, s, g), optimum())
    assert planner.stats["candidates"] == 1 + 2 * 16  # the warm start is scored first


def test_close_in_place_never_moves_on_a_closing_step():
    # the optimum moves and closes at once; with close_in_place no candidate may do both
    target = torch.tensor([0.03, -0.02, 0.01, 0.0, 0.0, 0.0, 1.0])
    model, z, s, g = problem(target)
    planner = CEM(LOW, HIGH, horizon=2, num_samples=100, num_elites=10, iterations=3, frozen_dims=ROTATION, seed=0,
                  close_in_place=True)
    plan = planner.plan(model, z, s, g)
    candidates = torch.cat(model.seen_actions).reshape(-1, 7)
    closing = candidates[:, 6] == 1.0
    assert closing.any() and torch.all(candidates[closing, :6] == 0)
    assert torch.all(candidates[~closing, 6] < 1.0)
    assert not (plan[:, 6] == 1.0).logical_and(plan[:, :3].abs().sum(-1) > 0).any()


class GripperStopsWorldModel:
    """Latents that never change; a predicted state whose gripper closure stops at 0.4 (an object between
    the fingers) however hard it is closed. Counts its rollouts."""

    privileged, views, action_dim, state_dim, predicts_state = False, ("pixels",), 7, 7, True

    def __init__(self):
        self.calls = {"rollout": 0, "rollout_with_states": 0}

    def rollout(self, z, state, actions):
        self.calls["rollout"] += 1
        return z[:, None].expand(actions.shape[0], actions.shape[1], *z.shape[1:])

    def rollout_with_states(self, z, state, actions):
        self.calls["rollout_with_states"] += 1
        states = state[:, None] + actions.cumsum(1)
        states[..., 6] = states[..., 6].clamp(0, 0.4)
        return self.rollout(z, state, actions), states

    def decode_state(self, z):
        return torch.zeros(len(z), 7)


def test_the_state_term_reads_the_world_models_predicted_states_and_the_twin_integrates():
    goal = torch.zeros(1, 7)
    goal[0, 6] = 0.4  # the goal image shows the gripper closed on the object
    close = torch.zeros(1, 2, 7)
    close[..., 6] = 1.0  # close hard for two steps
    z, state = torch.zeros(1, 2, 3), torch.zeros(1, 7)
    planner = CEM(LOW, HIGH, horizon=2, state_weight=1.0, state_dims=[6], energy="final")
    planner.fix_goal_state(goal)
    model = GripperStopsWorldModel()
    learned = planner.score(model, z, state, z, close)
    assert model.calls["rollout_with_states"] == 1
    assert learned.item() == pytest.approx(0.0, abs=1e-6)  # the predicted closure stops at the goal's 0.4
    twin = CEM(LOW, HIGH, horizon=2, state_weight=1.0, state_dims=[6], energy="final", latent_weight=0.0)
    twin.fix_goal_state(goal)
    off = GripperStopsWorldModel()
    integrated = twin.score(off, z, state, z, close)
    assert off.calls == {"rollout": 0, "rollout_with_states": 0}  # the no-predictor twin predicts nothing
    # integrated, the hand-written rule (stop_at_goal_closure) stands in: closing past the goal counts as reaching it
    assert integrated.item() == pytest.approx(0.0, abs=1e-6)
    no_rule = twin._state_energy(state, close, states=(state[:, None] + close.cumsum(1)).clamp(0, 1))
    assert no_rule.item() == pytest.approx(0.6)  # without it, integrating "close" overshoots to 1.0
