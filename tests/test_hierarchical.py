"""Two-level planning (planners/hierarchical.py): a detour that greedy search cannot find, macro-action
playback, primitive sampling, the learned high-level checkpoint and the privilege boundary."""
from pathlib import Path

import numpy as np
import pytest
import torch

from planners import CEM
from planners.energy import latent_l1_energy
from planners.factory import build_method, check_method, is_privileged, load_high_level_model
from planners.hierarchical import PRIMITIVES, HierarchicalPlanner, MacroActions, PrimitiveCEM, macro_bounds
from planners.protocol import WorldModelDefaults

ROOT = Path(__file__).resolve().parents[1]
LOW = np.array([-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, -1.0], dtype=np.float32)
HIGH = -LOW
START, GOAL = (0.0, 0.0), (1.0, 0.0)


class WallWorld(WorldModelDefaults):
    """A point in the plane (the latent: one token [x, y]) moved by actions[:2], with a wall at
    x = 0.5 for |y| <= 0.3 that stops it. From (0, 0) to the goal (1, 0) the way round the wall
    first moves *away* from the goal for at least 0.3 / 0.05 = 6 steps, so any planner that looks
    fewer steps ahead stays at the wall."""

    action_dim = 7

    def step(self, p: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        new = p + a[..., :2]
        crossing = (p[..., 0] < 0.5) & (new[..., 0] >= 0.5)
        t = (0.5 - p[..., 0]) / (new[..., 0] - p[..., 0]).clamp(min=1e-9)
        y = p[..., 1] + t * (new[..., 1] - p[..., 1])
        blocked = crossing & (y.abs() <= 0.3)
        stop = torch.stack([torch.full_like(y, 0.4999), y], -1)
        return torch.where(blocked[..., None], stop, new)

    def rollout(self, z, state, actions):
        p = z[:, 0].expand(actions.shape[0], -1)
        out = []
        for t in range(actions.shape[1]):
            p = self.step(p, actions[:, t])
            out.append(p)
        return torch.stack(out, 1)[:, :, None]  # [B, H, 1, 2]


def run(planner, steps: int = 60) -> torch.Tensor:
    world, goal = WallWorld(), torch.tensor([[GOAL]])
    z = torch.tensor([[START]])
    planner.reset(0)
    for _ in range(steps):
        action = planner.plan(world, z, torch.zeros(1, 7), goal)[0]
        z = world.step(z[:, 0], action[None])[:, None]
        planner.shift(1)
    return z[0, 0]


def flat_cem(**kwargs):
    return CEM(LOW, HIGH, horizon=2, num_samples=64, num_elites=8, iterations=4, energy="sum", **kwargs)


def two_level(macro_steps: int = 8):
    macro_low, macro_high = macro_bounds(LOW, HIGH, macro_steps)
    high = PrimitiveCEM(macro_low.numpy(), macro_high.numpy(), horizon=3, num_samples=200, num_elites=20,
                        iterations=4, energy="final")
    return HierarchicalPlanner(flat_cem(), high, MacroActions(WallWorld(), macro_steps), macro_steps)


def test_greedy_search_stops_at_the_wall_and_the_two_level_search_goes_round():
    flat = run(flat_cem())
    assert abs(flat[0] - 0.5) < 0.02 and flat[1].abs() < 0.3, flat  # stuck in front of the wall
    planner = two_level()
    end = run(planner)
    assert torch.dist(end, torch.tensor(GOAL)) < 0.05, end
    assert planner.high_plans >= 3  # replanned at least every macro_steps control steps


def test_macro_actions_play_equal_steps_and_return_each_macro_end():
    class Counter(WorldModelDefaults):
        def rollout(self, z, state, actions):
            return actions.cumsum(1)[:, :, None]  # the summed actions so far, one token

    macros = torch.tensor([[[4.0, 0, 0, 0, 0, 0, 4.0], [0, -2.0, 0, 0, 0, 0, 0]]])
    out = MacroActions(Counter(), 4).rollout(None, None, macros)
    assert out.shape == (1, 2, 1, 7)
    torch.testing.assert_close(out[0, :, 0], macros[0].cumsum(0))  # k steps of macro / k add up to the macro
    with pytest.raises(ValueError, match="macro_steps"):
        MacroActions(Counter(), 0)


def test_primitive_cem_samples_one_primitive_per_macro_action_and_returns_the_best_candidate():
    macro_low, macro_high = macro_bounds(LOW, HIGH, 4)
    planner = PrimitiveCEM(macro_low.numpy(), macro_high.numpy(), horizon=3, num_samples=64, num_elites=8,
                           iterations=2, energy="final")
    planner._initial()
    samples = planner._sample(torch.zeros(3, 7), torch.ones(3, 7), torch.full((3, 3), 1 / 3))
    used = samples != 0  # every dim the sample moves (zero = held: no motion, gripper "hold")
    assert not (used[..., :2].any(-1) & used[..., 2]).any()  # never horizontal and vertical at once
    assert not (used[..., :3].any(-1) & used[..., 6]).any()  # never a move and a gripper command at once
    assert used[..., 3:6].sum() == 0  # rotation frozen
    assert len(PRIMITIVES) == 3

    world, z, goal = WallWorld(), torch.tensor([[START]]), torch.tensor([[[0.2, 0.1]]])
    plan = planner.plan(MacroActions(world, 4), z, torch.zeros(1, 7), goal)
    best = latent_l1_energy(MacroActions(world, 4).rollout(z, None, plan[None]), goal)
    assert float(best) == pytest.approx(planner.stats["energy"], abs=1e-6)  # the plan is the best candidate scored


def test_learned_high_level_checkpoint_round_trip_and_stride_check(tmp_path):
    from test_finetune import FIXTURE, _cfg

    from vjepa_ac import WorldModel
    from vjepa_ac.finetune import finetune

    from omegaconf import open_dict

    cfg = _cfg(tmp_path, data={"root": str(FIXTURE), "num_steps": 3}, train={"steps": 2, "batch_size": 4})
    with open_dict(cfg):
        cfg.data.reader.frame_stride = 2  # a high-level model: frames 2 control steps apart, summed actions
    ckpt = finetune(cfg)
    model = load_high_level_model({"world_model": str(ckpt), "macro_steps": 2})
    assert model.frame_stride == 2 and not model.privileged
    frames = np.zeros((1, 32, 32, 3), np.uint8)
    z = model.encode(frames)
    out = model.rollout(z, torch.zeros(1, 7), torch.zeros(5, 3, 7))
    assert out.shape == (5, 3, *z.shape[1:])
    assert WorldModel.from_checkpoint(ckpt).frame_stride == 2
    with pytest.raises(ValueError, match="frame_stride"):
        load_high_level_model({"world_model": str(ckpt), "macro_steps": 4})

    # held-out error per macro-action, against the per-step model over the same (seeded) encoder
    from hydra import compose, initialize_config_dir

    from vjepa_ac.dynamics_eval import LOW_LEVEL, evaluate_dynamics

    low_cfg = _cfg(tmp_path / "low", data={"root": str(FIXTURE), "num_steps": 3}, train={"steps": 2, "batch_size": 4})
    low = finetune(low_cfg)
    assert WorldModel.from_checkpoint(low).shares_encoder(model)
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        eval_cfg = compose("eval_dynamics", [f"checkpoint={ckpt}", f"low_level_checkpoint={low}", f"data.root={FIXTURE}",
                                             "eval.horizon=2", "eval.split=all", "device=cpu"])
    errors = evaluate_dynamics(eval_cfg)
    assert set(errors) == {"predictor", "copy last", "shuffled actions", LOW_LEVEL}
    assert all(e.shape[1] == 2 and np.isfinite(e).all() for e in errors.values())


def test_no_privileged_signal_reaches_the_learned_hierarchical_method():
    learned = {"kind": "planner", "world_model": str(ROOT / "checkpoints" / "vjepa_ac_tiny"),
               "planner": {"name": "cem", "num_samples": 8, "num_elites": 2, "iterations": 1},
               "high_level": {"world_model": str(ROOT / "checkpoints" / "vjepa_ac_tiny_k4"), "macro_steps": 4,
                              "planner": {"name": "primitive_cem", "num_samples": 8, "num_elites": 2, "iterations": 1}}}
    check_method("learned_cem_hierarchical", learned)
    assert not is_privileged(learned)
    assert is_privileged({**learned, "high_level": {**learned["high_level"], "world_model": "oracle"}})

    class Space:
        low, high = LOW, HIGH

    class Env:
        action_space = Space()

    world_model, planner = build_method(learned, Env(), make_expert=None)
    assert isinstance(planner, HierarchicalPlanner)
    assert not world_model.privileged and not planner.high_model.privileged
    with pytest.raises(ValueError, match="goals must be 'final'"):
        check_method("x", {**learned, "goals": "subgoals"})
    with pytest.raises(ValueError, match="lacks"):
        check_method("x", {**learned, "high_level": {"world_model": "oracle"}})


def test_episode_log_lists_each_subgoal_and_how_close_the_low_level_came():
    planner = two_level()
    run(planner, steps=12)
    log = planner.episode_log()["subgoals"]
    assert len(log) == planner.high_plans >= 2
    assert sum(entry["steps"] for entry in log) == 12
    assert all(0 <= entry["closest_energy"] <= entry["start_energy"] for entry in log)
    assert CEM(LOW, HIGH).episode_log() == {}


def test_benchmark_cells_report_subgoal_quality():
    from planners.benchmark import summarize_cell

    log = {"subgoals": [{"steps": 4, "start_energy": 1.0, "closest_energy": 0.1},
                        {"steps": 4, "start_energy": 2.0, "closest_energy": 1.0},
                        {"steps": 2, "start_energy": 1.0, "closest_energy": 0.6}]}
    episode = {"success_at_end": True, "success_any": True, "first_success_step": 3, "records": [],
               "final_distances": {"d": 0.0}, "time_per_action": {"encode_s": 0, "rollout_s": 0, "overhead_s": 0},
               "planner_log": log}
    quality = summarize_cell([episode], "d")["subgoals"]
    assert quality == {"count": 3, "closest_fraction_median": 0.5, "share_below_0.2": pytest.approx(1 / 3)}
    assert summarize_cell([{**episode, "planner_log": {}}], "d")["subgoals"] is None
    prior_log = {"subgoals": [{"steps": 1, "start_cm": 10.0, "closest_cm": 5.0},
                              {"steps": 1, "start_cm": 2.0, "closest_cm": 0.2}]}
    quality = summarize_cell([{**episode, "planner_log": prior_log}], "d")["subgoals"]
    assert quality == {"count": 2, "closest_fraction_median": pytest.approx(0.3), "share_below_0.2": 0.5,
                       "closest_cm_median": pytest.approx(2.6), "share_within_1cm": 0.5}


def test_low_level_aims_at_the_subgoal_or_at_the_goal_image_as_configured():
    seen = []

    class Recording(CEM):
        def plan(self, world_model, z_now, state_now, z_goal):
            seen.append(z_goal.clone())
            return super().plan(world_model, z_now, state_now, z_goal)

    macro_low, macro_high = macro_bounds(LOW, HIGH, 4)
    goal = torch.tensor([[GOAL]])
    for low_goal in ("subgoal", "goal"):
        seen.clear()
        high = PrimitiveCEM(macro_low.numpy(), macro_high.numpy(), horizon=3, num_samples=50, num_elites=5,
                            iterations=2, energy="final")
        low = Recording(LOW, HIGH, horizon=2, num_samples=16, num_elites=4, iterations=2)
        planner = HierarchicalPlanner(low, high, MacroActions(WallWorld(), 4), 4, low_goal=low_goal)
        planner.reset(0)
        planner.plan(WallWorld(), torch.tensor([[START]]), torch.zeros(1, 7), goal)
        assert torch.equal(seen[0], goal) == (low_goal == "goal")
        assert torch.equal(seen[0], planner.subgoal) == (low_goal == "subgoal")
    with pytest.raises(ValueError, match="low_goal"):
        HierarchicalPlanner(low, high, MacroActions(WallWorld(), 4), 4, low_goal="elsewhere")
