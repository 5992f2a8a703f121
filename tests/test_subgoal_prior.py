"""The subgoal prior: keyframe targets from demonstrations, training over a fine-tuned world model, the
checkpoint round trip, and the two-level planner that follows it (planners/hierarchical.py)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from planners import CEM
from planners.factory import build_method, check_method, is_privileged
from planners.hierarchical import HierarchicalPlanner
from planners.views import MultiViewWorldModel
from vjepa_ac import WorldModel
from vjepa_ac.checkpoint import load_weights, split_prefix
from vjepa_ac.state_action import STATE_HIGH, STATE_LOW
from vjepa_ac.models.subgoal_prior import (SubgoalPrior, SubgoalPriorConfig, gripper_commands, keyframe_delta,
                                           keyframe_kind_names, keyframe_kinds)
from vjepa_ac.embedding_cache import EpisodeLatents
from vjepa_ac.subgoal_prior_training import KeyframeSamples, held_out_errors, train_subgoal_prior

from tiny_world_model import ROOT, compose_on_fixture, finetune_tiny_world_model

LOW = np.array([-0.05] * 3 + [-0.25] * 3 + [-1.0], dtype=np.float32)
HIGH = -LOW


def test_keyframes_are_the_demonstrations_gripper_commands_then_the_goal():
    states = torch.zeros(12, 7)
    states[:, 0] = torch.arange(12) / 100  # x moves 1 cm a step
    states[6:, 6] = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])  # closes from step 6 and settles at 0.4
    actions = torch.zeros(12, 7)
    actions[5:7, 6] = 1.0  # the close command starts at step 5 (held for two steps: one command)
    commands = gripper_commands(actions)
    assert commands == [(5, True)]
    goal_kind = keyframe_kinds(approach=0) - 1
    assert keyframe_kind_names(approach=0) == ["close", "close_settle", "open", "open_settle", "goal"]
    assert keyframe_kind_names(approach=2)[:3] == ["close_approach", "close", "close_settle"]
    before, kind = keyframe_delta(states, commands, t=1, goal=11)
    assert torch.allclose(before, states[5] - states[1]) and kind == 0  # to where the demonstration closed, still open
    assert before[0] == pytest.approx(0.04) and before[6] == 0
    closing, kind = keyframe_delta(states, commands, t=5, goal=11)
    assert torch.allclose(closing, states[9] - states[5]) and kind == 1  # then the close done, 4 steps later
    assert closing[6] == pytest.approx(0.4)
    assert _goes_to(states, commands, 9, 11, keyframe=11, kind=goal_kind)  # then the goal
    assert _goes_to(states, commands, 1, 4, keyframe=4, kind=goal_kind)  # a goal before it
    assert _goes_to(states, commands, 4, 11, keyframe=9, kind=1, arrived=0.015)  # arrived
    assert _goes_to(states, commands, 1, 11, keyframe=3, kind=0, approach=2)  # from above
    assert _goes_to(states, commands, 3, 11, keyframe=5, kind=1, approach=2)
    actions[10, 6] = -1.0  # an open command at step 10: its keyframes are the open kinds
    assert gripper_commands(actions) == [(5, True), (10, False)]
    assert _goes_to(states, gripper_commands(actions), 9, 11, keyframe=10, kind=2, arrived=0.005)


def test_frames_before_the_expert_took_over_are_no_samples():
    """A deliberately missed grasp (envs.ExpertWithMistakes) is no demonstration: samples start at the takeover."""
    states, actions = torch.zeros(12, 7), torch.zeros(12, 7)
    actions[3, 6], actions[8, 6] = 1.0, 1.0  # the mistaken close, then the expert's own
    episode = EpisodeLatents(torch.zeros(12, 1, 7), states, actions)
    samples = KeyframeSamples([episode, episode], [torch.zeros(12, 7)] * 2, future_goals=1, seed=0, first=[0, 7])
    frames = {e: {t for f, t, _ in samples.samples if f == e} for e in (0, 1)}
    assert frames == {0: set(range(11)), 1: set(range(7, 11))}
    # the first-frame read validation scores: each episode's first demonstrated frame toward its last
    assert [samples.samples[i] for i in samples.first_reads] == [(0, 0, 11), (1, 7, 11)]


def test_validation_scores_the_kind_read_at_each_episodes_first_frame():
    """`val/first_frame_kind_accuracy` is the kind accuracy over every episode's first frame toward its last,
    whatever the batch size it is computed in."""
    torch.manual_seed(0)
    actions = torch.zeros(12, 7)
    actions[5, 6] = 1.0  # a close at step 5: first frames head for it (kind 0), not for the goal
    episodes = [EpisodeLatents(torch.randn(12, 1, 7), torch.cumsum(torch.full((12, 7), 0.01), 0), actions)
                for _ in range(5)]
    samples = KeyframeSamples(episodes, [torch.zeros(12, 7)] * 5, future_goals=1, seed=0)
    prior = SubgoalPrior(SubgoalPriorConfig(num_tokens=1, embed_dim=7, reads_state=False, kinds=keyframe_kinds(0)))
    first = [samples[i] for i in samples.first_reads]
    z_now, state, z_goal = (torch.stack([s[k] for s in first]) for k in (0, 1, 2))
    expected = (prior.predict(z_now, state, z_goal)[1] == torch.stack([s[6] for s in first])).float().mean().item()
    for batch_size in (2, 64):
        errors = held_out_errors(prior, samples, torch.device("cpu"), batch_size, 1, keyframe_kind_names(0))
        assert errors["val/first_frame_kind_accuracy"] == pytest.approx(expected)


def _goes_to(states, commands, t, goal, keyframe: int, kind: int, **kwargs) -> bool:
    """Whether frame `t`'s next keyframe toward `goal` is frame `keyframe`, of `kind`."""
    delta, got = keyframe_delta(states, commands, t, goal, **kwargs)
    return torch.allclose(delta, states[keyframe] - states[t]) and got == kind


def test_prior_checks_its_inputs():
    prior = SubgoalPrior(SubgoalPriorConfig(num_tokens=4, embed_dim=8, reads_state=True))
    z, state = torch.zeros(2, 4, 8), torch.zeros(2, 7)
    assert prior(z, state, z, (state, state)).shape == (2, 7)
    with pytest.raises(ValueError, match="z_goal"):
        prior(z, state, torch.zeros(2, 3, 8), (state, state))
    with pytest.raises(ValueError, match="needs goal-state head readings"):
        prior(z, state, z)


def test_the_change_input_reads_the_goal_minus_the_present():
    prior = SubgoalPrior(SubgoalPriorConfig(num_tokens=4, embed_dim=8, reads_state=False, reads_change=True))
    with torch.no_grad():   # silence the frames' own projections: only the change term reads the tokens
        for layer in (prior.project_now, prior.project_goal):
            layer.weight.zero_()
            layer.bias.zero_()
    torch.manual_seed(0)
    z_now, z_goal, state, shift = torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.zeros(2, 7), torch.randn(2, 4, 8)
    torch.testing.assert_close(prior(z_now + shift, state, z_goal + shift), prior(z_now, state, z_goal))
    assert not torch.allclose(prior(z_now, state, z_goal + shift), prior(z_now, state, z_goal))


def test_an_extra_view_drops_out_in_training_only():
    prior = SubgoalPrior(SubgoalPriorConfig(num_tokens=4, embed_dim=8, reads_state=False, views=2, view_dropout=0.5))
    z_wrist = torch.randn(400, 4, 8)
    view = prior.extra_views[0]
    mean_only = view.project.bias.detach().repeat(4)  # what a dropped sample's tokens project to

    def dropped() -> torch.Tensor:
        return torch.isclose(view(z_wrist), mean_only).all(-1).float().mean()

    torch.manual_seed(0)
    prior.train()
    assert 0.4 < dropped() < 0.6
    prior.eval()
    assert dropped() == 0
    with pytest.raises(ValueError, match=r"z_now \[B, 8, 8\]"):  # the current frame of both views
        prior(torch.zeros(2, 4, 8), torch.zeros(2, 7), torch.zeros(2, 4, 8))


@pytest.fixture(scope="module")
def world_model_dir(tmp_path_factory) -> Path:
    return finetune_tiny_world_model(tmp_path_factory.mktemp("finetune"))


def _prior_cfg(tmp_path: Path, world_model_dir: Path, **overrides):
    return compose_on_fixture("train_subgoal_prior", tmp_path, OmegaConf.merge({
        "world_model": str(world_model_dir), "output_dir": str(tmp_path / "prior"),
        "data": {"policies": None, "successful_only": False, "max_noise": None}, "subgoal_prior": {"token_dim": 8, "width": 32, "reads_state": False},
        "train": {"steps": 60, "batch_size": 16, "log_every": 20, "val_every": 30, "checkpoint_every": 1000,
                  "val_batches": 2},
        "optim": {"warmup_steps": 5, "lr": 3e-3}}, overrides))


def test_prior_training_lowers_the_loss_and_the_checkpoint_is_the_same_world_model_plus_the_prior(
        tmp_path, world_model_dir):
    ckpt = train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir))
    source, trained = WorldModel.from_checkpoint(world_model_dir), WorldModel.from_checkpoint(ckpt)
    assert source.subgoal_prior is None and isinstance(trained.subgoal_prior, SubgoalPrior)
    for prefix in ("encoder", "predictor"):  # copied unchanged
        a, b = split_prefix(load_weights(world_model_dir), prefix), split_prefix(load_weights(ckpt), prefix)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    from vjepa_ac import embedding_cache
    from vjepa_ac.subgoal_prior_training import demonstrations
    dataset, kept = demonstrations(_prior_cfg(tmp_path, world_model_dir), "train", trained.resolution)
    cached = sorted((tmp_path / "cache").glob("*.safetensors"))
    assert len(cached) == 2  # the training run's train and val episodes
    episodes = embedding_cache.episode_latents(dataset, kept, trained.latents, tmp_path / "cache", 16, True, "cpu")
    assert sorted((tmp_path / "cache").glob("*.safetensors")) == cached  # read back, not rebuilt
    z, states, actions = episodes[0]
    last = len(states) - 1
    approach = _prior_cfg(tmp_path, world_model_dir).hindsight.approach_steps
    assert trained.subgoal_prior.cfg.kinds == keyframe_kinds(approach)
    targets, kinds = zip(*(keyframe_delta(states, gripper_commands(actions), t, last, approach=approach)
                           for t in range(last)))
    targets, kinds = torch.stack(targets), torch.tensor(kinds)
    torch.manual_seed(1)
    untrained = SubgoalPrior(trained.subgoal_prior.cfg)
    untrained.set_stats(z.float(), states, targets)
    goal = z[last:].float().expand(last, -1, -1)
    with torch.no_grad():
        trained_loss = trained.subgoal_prior.loss(z[:last].float(), states[:last], goal, None, targets, kinds)
        assert trained_loss < 0.8 * untrained.loss(z[:last].float(), states[:last], goal, None, targets, kinds)
    proposal = trained.propose_subgoal(z[:2].float(), states[:2], goal[:2])
    with torch.no_grad():
        expected = states[:2] + trained.subgoal_prior(z[:2].float(), states[:2], goal[:2])
    assert torch.allclose(proposal, expected.clamp(torch.as_tensor(STATE_LOW), torch.as_tensor(STATE_HIGH)), atol=1e-5)
    with pytest.raises(ValueError, match="no subgoal prior"):
        source.propose_subgoal(z[:1].float(), states[:1], goal[:1])
    # a prior of another size trains over a checkpoint that holds one: the old one is not loaded
    again = train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir, world_model=str(ckpt),
                                           output_dir=str(tmp_path / "again"), subgoal_prior={"width": 16},
                                           train={"steps": 2}, optim={"warmup_steps": 1}))
    assert WorldModel.from_checkpoint(again).subgoal_prior.cfg.width == 16
    # a goal-state head trained over a checkpoint that holds a prior writes a loadable checkpoint without it
    from vjepa_ac.state_head_training import train_state_head

    head = train_state_head(compose_on_fixture("train_state_head", tmp_path, {
        "world_model": str(ckpt), "output_dir": str(tmp_path / "head"), "state_head": {"token_dim": 8, "width": 32},
        "train": {"steps": 2, "batch_size": 8, "val_every": 1000, "checkpoint_every": 1000},
        "optim": {"warmup_steps": 1}}))
    reloaded = WorldModel.from_checkpoint(head)
    assert reloaded.state_head is not None and reloaded.subgoal_prior is None


def test_prior_training_names_what_is_missing(tmp_path, world_model_dir):
    with pytest.raises(ValueError, match="no goal-state head"):
        train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir, subgoal_prior={"reads_state": True}))
    with pytest.raises(ValueError, match="no 'success' column"):
        train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir, data={"successful_only": True}))
    with pytest.raises(ValueError, match="no 'policy' column"):
        train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir, data={"policies": ["expert"]}))
    with pytest.raises(ValueError, match="no 'noise' column"):
        train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir, data={"max_noise": 0.1}))


@pytest.fixture(scope="module")
def two_camera_logs(tmp_path_factory) -> Path:
    """Three grasp demonstrations recorded by the front and the wrist camera at once."""
    pytest.importorskip("envs")
    from vjepa_ac.data.sim_collection import collect_robot_logs

    out = tmp_path_factory.mktemp("logs") / "two_cameras"
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose("collect_robot_logs", overrides=[
            f"output_dir={out}", "episodes_per_task=3", "random_fraction=0", "num_workers=1", "tasks=[grasp]",
            "noise_levels=[0.0]", "resolution=32", "wrist_camera_key=observation.images.wrist"])
    collect_robot_logs(cfg)
    return out


def test_a_prior_over_two_cameras_reads_the_current_wrist_frame_and_only_the_front_goal_image(
        tmp_path, world_model_dir, two_camera_logs):
    ckpt = train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir, data={
        "root": str(two_camera_logs), "extra_camera_keys": ["observation.images.wrist"]},
        train={"steps": 4}, optim={"warmup_steps": 1}))
    wm = WorldModel.from_checkpoint(ckpt)
    assert wm.subgoal_prior.cfg.views == 2
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 4  # train and val episodes of each camera
    # the planner's low level encodes, its high level (another model, not yet used) proposes
    low, high = (MultiViewWorldModel({"pixels": wm, "wrist_pixels": wm}, energy_weights={"wrist_pixels": 0.0})
                 for _ in range(2))
    rng = np.random.default_rng(0)
    now, goal = (rng.integers(0, 256, (1, 2, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    other_wrist = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    state = torch.zeros(1, 7)
    proposal = high.propose_subgoal(low.encode(now), state, low.encode_goal(goal))
    goal[0, 1] = other_wrist  # the goal's wrist image is never read: one goal image, the front camera's
    assert torch.equal(proposal, high.propose_subgoal(low.encode(now), state, low.encode_goal(goal)))
    now[0, 1] = other_wrist  # the current wrist frame is read
    assert not torch.allclose(proposal, high.propose_subgoal(low.encode(now), state, low.encode_goal(goal)))
    with pytest.raises(ValueError, match="reads 2 view"):
        MultiViewWorldModel({"pixels": wm, "wrist_pixels": wm, "more": wm}).propose_subgoal
    assert MultiViewWorldModel({"pixels": WorldModel.from_checkpoint(world_model_dir),
                                "wrist_pixels": wm}).propose_subgoal is None  # no prior in the first view


class DetourWorld:
    """Latents carry nothing the planner can use (every prediction equals the goal), so the low level
    is steered by its state term alone; the prior proposes a fixed detour state."""

    privileged, action_dim, resolution, views = False, 7, None, ("pixels",)
    DETOUR = torch.tensor([[0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0]])

    def rollout(self, z, state, actions):
        return z.expand(actions.shape[0], -1, -1)[:, None].expand(-1, actions.shape[1], -1, -1).clone()

    def propose_subgoal(self, z_now, state_now, z_goal):
        return self.DETOUR.clone()


def _low(**kwargs):
    return CEM(LOW, HIGH, horizon=2, num_samples=64, num_elites=8, iterations=4, energy="sum", state_weight=1.0,
               **kwargs)


def test_without_a_search_the_low_level_goes_where_the_prior_proposes():
    planner = HierarchicalPlanner(_low(), None, DetourWorld(), macro_steps=4, low_goal="goal")
    planner.reset(0)
    state, z = torch.zeros(1, 7), torch.zeros(1, 1, 2)
    for _ in range(10):
        action = planner.plan(DetourWorld(), z, state, z)[0]
        state = state + action[None]
        planner.shift(1)
    assert torch.allclose(planner.low_level.goal_state, DetourWorld.DETOUR)
    assert abs(float(state[0, 1]) - 0.3) < 0.03 and planner.high_plans == 3  # proposed every 4 control steps
    assert np.isnan(planner.stats["high_energy"])
    log = planner.episode_log()["subgoals"]  # how near the end effector came to each proposal, in cm
    assert log[0]["start_cm"] == pytest.approx(30) and log[-1]["closest_cm"] < 3
    assert all(0 <= entry["closest_cm"] <= entry["start_cm"] for entry in log)
    with pytest.raises(ValueError, match="low_goal must be 'goal'"):
        HierarchicalPlanner(_low(), None, DetourWorld(), macro_steps=4, low_goal="subgoal")
    with pytest.raises(ValueError, match="state_weight > 0"):
        HierarchicalPlanner(CEM(LOW, HIGH, horizon=2), None, DetourWorld(), macro_steps=4, low_goal="goal")
    with pytest.raises(ValueError, match="must propose subgoals"):
        HierarchicalPlanner(_low(), None, object(), macro_steps=4, low_goal="goal")


def test_a_method_with_a_null_high_level_planner_follows_its_checkpoints_prior(tmp_path, world_model_dir):
    ckpt = str(train_subgoal_prior(_prior_cfg(tmp_path, world_model_dir, train={"steps": 2},
                                              optim={"warmup_steps": 1})))
    method = {"kind": "planner", "world_model": ckpt,
              "planner": {"name": "cem", "num_samples": 8, "num_elites": 2, "iterations": 1, "state_weight": 1.0},
              "high_level": {"world_model": ckpt, "macro_steps": 4, "planner": None, "low_goal": "goal"}}
    check_method("learned_cem_prior", method)
    assert not is_privileged(method)

    class Space:
        low, high = LOW, HIGH

    class Env:
        action_space = Space()

    world_model, planner = build_method(method, Env(), make_expert=None)
    assert isinstance(planner, HierarchicalPlanner) and planner.high_level is None
    assert not world_model.privileged and not planner.high_model.privileged


def test_the_privileged_prior_reads_the_logged_environment_state_and_drives_the_oracle_high_level(tmp_path):
    envs = pytest.importorskip("envs")
    from vjepa_ac.data import sim_collection
    from planners.oracle import OracleSubgoalPrior

    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        collect = compose("collect_robot_logs", [f"output_dir={tmp_path / 'logs'}", "episodes_per_task=1",
                                                 "random_fraction=0", "num_workers=0", "tasks=[grasp,pick_place]",
                                                 "noise_levels=[0.0]"])
    sim_collection.collect_robot_logs(collect)
    cfg = compose_on_fixture("train_subgoal_prior", tmp_path, {
        "output_dir": str(tmp_path / "prior"), "data": {"root": str(tmp_path / "logs"), "observation": "environment_state"},
        "subgoal_prior": {"token_dim": 4, "width": 32, "reads_state": False},
        "train": {"steps": 20, "batch_size": 16, "log_every": 10, "val_every": 1000, "checkpoint_every": 1000},
        "optim": {"warmup_steps": 2}})
    with pytest.raises(ValueError, match="reads_state=false"):
        train_subgoal_prior(OmegaConf.merge(cfg, {"subgoal_prior": {"reads_state": True}}))
    ckpt = train_subgoal_prior(cfg)
    assert sorted(split_prefix(load_weights(ckpt), "encoder")) == []  # the prior alone, no world model

    method = {"kind": "planner", "world_model": "oracle",
              "planner": {"name": "cem", "num_samples": 8, "num_elites": 2, "iterations": 1, "state_weight": 1.0},
              "high_level": {"world_model": "oracle", "macro_steps": 4, "planner": None, "low_goal": "goal",
                             "prior": str(ckpt)}}
    check_method("oracle_cem_prior", method)
    assert is_privileged(method)
    with pytest.raises(ValueError, match="needs `prior`"):
        check_method("x", {**method, "high_level": {**method["high_level"], "prior": None}})
    env = envs.make_env("pick_place")
    world_model, planner = build_method(method, env, envs.make_expert)
    assert isinstance(planner.high_model, OracleSubgoalPrior) and planner.high_model.privileged
    obs, info = env.reset(seed=0)
    z_now, z_goal = world_model.encode(obs["pixels"][None]), world_model.encode_goal(info["goal_pixels"][None])
    proposal = planner.high_model.propose_subgoal(z_now, torch.as_tensor(obs["state"])[None], z_goal)
    assert proposal.shape == (1, 7) and torch.isfinite(proposal).all()
    env.close()


def test_a_low_level_with_latent_weight_zero_predicts_nothing_and_steers_by_the_state_alone():
    class NoRollout(DetourWorld):
        def rollout(self, z, state, actions):
            raise AssertionError("latent_weight 0 must not roll the world model out")

    planner = HierarchicalPlanner(_low(latent_weight=0.0), None, NoRollout(), macro_steps=4, low_goal="goal")
    planner.reset(0)
    state, z = torch.zeros(1, 7), torch.zeros(1, 1, 2)
    for _ in range(8):
        state = state + planner.plan(NoRollout(), z, state, z)[0][None]
        planner.shift(1)
    assert abs(float(state[0, 1]) - 0.3) < 0.03
    with pytest.raises(ValueError, match="latent_weight"):
        _low(latent_weight=-1.0)
