"""The goal-state head: training over a fine-tuned world model, the checkpoint round trip, and the
planners' state energy (its goal state read relative to the present)."""
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from planners import CEM
from planners.mpc import TimedWorldModel
from vjepa_ac import WorldModel
from vjepa_ac.checkpoint import load_weights, split_prefix
from vjepa_ac.models.state_head import StateHead, StateHeadConfig
from vjepa_ac.state_head_training import train_state_head

from tiny_world_model import FIXTURE, compose_on_fixture, finetune_tiny_world_model

LOW, HIGH = [-0.05] * 3 + [-0.25] * 3 + [-1.0], [0.05] * 3 + [0.25] * 3 + [1.0]


def _compose(name: str, tmp_path: Path, overrides: dict):
    """`compose_on_fixture` with fine-tuning's windows of 3 frames and its cache (the head reuses them)."""
    windows = {"data": {"num_steps": 3}, "cache": {"enabled": True}}
    return compose_on_fixture(name, tmp_path, OmegaConf.merge(windows, overrides))


@pytest.fixture(scope="module")
def world_model_dir(tmp_path_factory) -> Path:
    return finetune_tiny_world_model(tmp_path_factory.mktemp("finetune"))


def test_head_training_lowers_the_loss_and_the_checkpoint_is_the_same_world_model_plus_the_head(
        tmp_path, world_model_dir):
    cfg = _compose("train_state_head", tmp_path, {
        "world_model": str(world_model_dir), "output_dir": str(tmp_path / "head"),
        "state_head": {"token_dim": 8, "width": 32},
        "train": {"steps": 60, "batch_size": 8, "log_every": 20, "val_every": 30, "checkpoint_every": 1000},
        "optim": {"warmup_steps": 5, "lr": 3e-3}})
    ckpt = train_state_head(cfg)

    source, trained = WorldModel.from_checkpoint(world_model_dir), WorldModel.from_checkpoint(ckpt)
    assert source.state_head is None and isinstance(trained.state_head, StateHead)
    for prefix in ("encoder", "predictor"):  # copied unchanged
        a, b = split_prefix(load_weights(world_model_dir), prefix), split_prefix(load_weights(ckpt), prefix)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert trained.frame_stride == source.frame_stride

    from vjepa_ac.data.robot_logs import RobotLogDataset
    data = RobotLogDataset(FIXTURE, num_steps=2, split="train", resolution=32)
    frames = torch.cat([torch.from_numpy(data.episode_frames(e)) for e in data.episodes])
    states = torch.cat([torch.as_tensor(data.states[e]) for e in data.episodes]).float()
    z = trained.encode(frames)
    torch.manual_seed(1)
    untrained = StateHead(trained.state_head.cfg)
    untrained.set_state_stats(states)
    with torch.no_grad():
        assert trained.state_head.loss(z, states) < 0.7 * untrained.loss(z, states)
    assert trained.decode_state(z[:3]).shape == (3, 7)
    with pytest.raises(ValueError, match="no goal-state head"):
        source.decode_state(z[:1])


class LineWorld:
    """Latents carry nothing (every prediction equals the goal), so only the state term can steer;
    the head reads a state from the latent's first feature with a constant bias."""

    privileged, action_dim, resolution, views = False, 7, None, ("pixels",)

    def __init__(self, bias: float = 0.0):
        self.bias = bias

    def rollout(self, z, state, actions):
        return z.expand(actions.shape[0], -1, -1)[:, None].expand(-1, actions.shape[1], -1, -1).clone()

    def decode_state(self, z):
        state = torch.zeros(z.shape[0], 7)
        state[:, 0] = z[:, 0, 0] + self.bias
        return state


def _plan(world_model, z_now, state_now, z_goal, **kwargs):
    planner = CEM(LOW, HIGH, horizon=2, num_samples=200, num_elites=10, iterations=5, seed=0,
                  state_weight=1.0, **kwargs)
    return planner.plan(world_model, z_now, state_now, z_goal), planner


def test_state_energy_steers_toward_the_goal_state_read_from_the_goal_latent():
    z_now, z_goal = torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)
    z_goal[0, 0, 0] = 0.3  # the head reads x = 0.3 from the goal, the robot is at x = 0
    actions, planner = _plan(LineWorld(), z_now, torch.zeros(1, 7), z_goal)
    assert actions[:, 0].sum() > 0.08 and abs(float(actions[:, 1].sum())) < 0.03  # toward +x, near-full steps
    assert torch.allclose(planner.goal_state[0, 0], torch.tensor(0.3))
    # through the MPC loop's timing wrapper too
    wrapped, _ = _plan(TimedWorldModel(LineWorld()), z_now, torch.zeros(1, 7), z_goal)
    assert torch.equal(wrapped, actions)


def test_relative_goal_state_cancels_the_heads_bias():
    z_now, z_goal = torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)
    z_goal[0, 0, 0] = 0.3
    state_now = torch.zeros(1, 7)
    state_now[0, 0] = 0.5  # the measured state
    _, relative = _plan(LineWorld(bias=0.2), z_now, state_now, z_goal)  # the head reads 0.5 from the goal
    assert torch.allclose(relative.goal_state[0, 0], torch.tensor(0.8))  # measured 0.5 + (0.5 - 0.2)


def test_closing_on_a_goal_that_shows_the_object_held_scores_like_reaching_its_closure():
    # the goal shows the fingers stopped by an object at closure 0.4: "close" (integrated to 1.0)
    # reaches it, "hold" (0.0) does not; opening past a goal's closure has no object to stop it
    from planners.base import stop_at_goal_closure

    states = torch.zeros(3, 2, 7)
    states[0, :, 6], states[1, :, 6] = 1.0, 0.2  # close, half-close, hold
    goal = torch.zeros(1, 7)
    goal[0, 6] = 0.4
    assert stop_at_goal_closure(states, torch.zeros(1, 7), goal)[:, -1, 6].tolist() == pytest.approx([0.4, 0.2, 0.0])
    now = torch.zeros(1, 7)
    now[0, 6], goal[0, 6] = 0.9, 0.3  # opening toward a more open goal: nothing is clipped
    assert torch.equal(stop_at_goal_closure(states, now, goal), states)

    class HeldGoal(LineWorld):
        def decode_state(self, z):
            state = super().decode_state(z)
            state[:, 6] = 0.4 * z[:, 0, 1]  # the goal latent shows the gripper closed on an object
            return state

    z_now, z_goal = torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)
    z_goal[0, 0, 1] = 1.0
    actions, _ = _plan(HeldGoal(), z_now, torch.zeros(1, 7), z_goal, state_dims=[0, 1, 2, 6])
    assert actions[0, 6] > 0.5  # it closes


def test_with_a_grasp_radius_only_a_close_at_the_goal_position_holds_the_object():
    from planners.base import stop_at_goal_closure

    goal = torch.zeros(1, 7)
    goal[0, 0], goal[0, 6] = 0.1, 0.4  # the goal image shows the object held 10 cm along x
    states = torch.zeros(2, 2, 7)
    states[:, :, 0] = torch.tensor([[0.0, 0.1], [0.1, 0.1]])  # plan 0 closes, then arrives; plan 1 arrives, then closes
    states[0, :, 6], states[1, :, 6] = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])
    closure = stop_at_goal_closure(states, torch.zeros(1, 7), goal, grasp_radius=0.02)[..., 6]
    torch.testing.assert_close(closure, torch.tensor([[1.0, 1.0], [0.0, 0.4]]))  # the early close stays empty
    torch.testing.assert_close(stop_at_goal_closure(states, torch.zeros(1, 7), goal)[..., 6],
                               torch.tensor([[0.4, 0.4], [0.0, 0.4]]))


def test_a_gripper_change_inside_the_deadband_counts_as_hold():
    from planners.base import hold_small_gripper_changes

    now, goal = torch.zeros(1, 7), torch.zeros(1, 7)
    goal[0, 6] = 0.1  # head noise on an open gripper
    assert float(hold_small_gripper_changes(goal, now, 0.2)[0, 6]) == 0.0
    goal[0, 6] = 0.4  # the goal shows the object held
    assert float(hold_small_gripper_changes(goal, now, 0.2)[0, 6]) == pytest.approx(0.4)

    class NoisyOpen(LineWorld):
        def decode_state(self, z):
            state = super().decode_state(z)
            state[:, 6] = 0.1 * z[:, 0, 1]  # reads an open gripper's goal as 0.1 closed
            return state

    z_now, z_goal = torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)
    z_goal[0, 0, 1] = 1.0
    without, _ = _plan(NoisyOpen(), z_now, torch.zeros(1, 7), z_goal, state_dims=[0, 1, 2, 6])
    with_band, _ = _plan(NoisyOpen(), z_now, torch.zeros(1, 7), z_goal, state_dims=[0, 1, 2, 6], gripper_deadband=0.2)
    assert without[0, 6] > 0.5 and with_band[0, 6] < 0.5  # noise closes the gripper only without the band


def test_state_energy_needs_a_head_and_valid_settings():
    class NoHead(LineWorld):
        decode_state = None

    z = torch.zeros(1, 1, 4)
    with pytest.raises(ValueError, match="goal-state head"):
        CEM(LOW, HIGH, state_weight=1.0).plan(NoHead(), z, torch.zeros(1, 7), z)
    with pytest.raises(ValueError, match="state_dims"):
        CEM(LOW, HIGH, state_weight=1.0, state_dims=[9])
    with pytest.raises(ValueError, match="state_weight"):
        CEM(LOW, HIGH, state_weight=-1.0)


def test_head_checks_its_input_shape():
    head = StateHead(StateHeadConfig(num_tokens=4, embed_dim=8))
    assert head(torch.zeros(2, 4, 8)).shape == (2, 7)
    with pytest.raises(ValueError, match=r"\[B, 4, 8\]"):
        head(torch.zeros(2, 5, 8))


def test_two_level_low_level_aims_at_the_state_the_first_macro_action_reaches():
    from planners.hierarchical import HierarchicalPlanner, PrimitiveCEM, macro_bounds

    z_now, z_goal = torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)
    z_goal[0, 0, 0] = 0.3  # the goal is 30 cm along +x
    high = PrimitiveCEM(*macro_bounds(LOW, HIGH, 4), horizon=3, num_samples=100, num_elites=10, iterations=3,
                        seed=0, state_weight=1.0)
    low = CEM(LOW, HIGH, horizon=2, num_samples=50, num_elites=5, iterations=2, seed=0, state_weight=1.0)
    planner = HierarchicalPlanner(low, high, LineWorld(), macro_steps=4)
    state_now = torch.zeros(1, 7)
    actions = planner.plan(LineWorld(), z_now, state_now, z_goal)
    first_macro = high.previous[0]
    assert first_macro[0] > 0.1  # the high level moves toward the goal state
    assert torch.allclose(low.goal_state, (state_now + first_macro).clamp(min=torch.zeros(7) - 2, max=torch.ones(7)))
    assert actions[:, 0].sum() > 0.05  # and the low level follows it
    planner.reset(0)
    assert low.fixed_goal_state is None


def test_goal_state_memory_averages_the_readings_of_one_goal_image():
    class Readings(LineWorld):  # each reading of the goal's x differs (head error as the frame changes)
        def __init__(self, values):
            super().__init__()
            self.values = iter(values)

        def decode_state(self, z):  # reads 0 from the present frame (z_now = 0), the next value from a goal
            state = torch.zeros(z.shape[0], 7)
            state[:, 0] = next(self.values) if z.any() else 0.0
            return state

    planner = CEM(LOW, HIGH, horizon=1, num_samples=8, num_elites=2, iterations=1, state_weight=1.0,
                  goal_state_memory=0.5)
    world, z_now, z_goal = Readings([0.2, 0.4, 0.6]), torch.zeros(1, 1, 4), torch.ones(1, 1, 4)
    planner.plan(world, z_now, torch.zeros(1, 7), z_goal)
    planner.plan(world, z_now, torch.zeros(1, 7), z_goal)
    assert float(planner.goal_state[0, 0]) == pytest.approx(0.3)  # 0.5 x 0.2 + 0.5 x 0.4
    planner.plan(world, z_now, torch.zeros(1, 7), 2 * z_goal)
    assert float(planner.goal_state[0, 0]) == pytest.approx(0.6)  # another goal image starts afresh
