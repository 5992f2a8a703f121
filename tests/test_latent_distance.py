"""The learned latent distance: hindsight step targets, training over a fine-tuned world model, the
checkpoint round trip, and planners whose latent energy it is (`latent_energy: learned`)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from planners import CEM
from vjepa_ac import WorldModel
from vjepa_ac.checkpoint import load_weights, split_prefix
from vjepa_ac.embedding_cache import EpisodeLatents
from vjepa_ac.latent_distance_training import StepSamples, held_out_errors, rank_correlation, train_latent_distance
from vjepa_ac.models.latent_distance import LatentDistance, LatentDistanceConfig

from tiny_world_model import ENCODER, compose_on_fixture, finetune_tiny_world_model
LOW = np.array([-0.05] * 3 + [-0.25] * 3 + [-1.0], dtype=np.float32)


def _episode(length: int, tokens: int = 4, dim: int = 8) -> EpisodeLatents:
    return EpisodeLatents(torch.randn(length, tokens, dim).half(), torch.zeros(length, 7), torch.zeros(length, 7))


def test_samples_are_every_frame_toward_the_last_and_later_frames_with_their_step_counts():
    episodes = [_episode(5), _episode(3)]
    samples = StepSamples(episodes, future_goals=2, seed=0)
    assert len(samples) == (5 + 3) * 3
    pairs = samples.samples.tolist()
    for e, episode in enumerate(episodes):
        last = len(episode.z) - 1
        frames = [(t, g) for i, t, g in pairs if i == e]
        assert {t for t, g in frames if g == last} == set(range(last + 1))  # every frame toward the last
        assert all(t <= g <= last for t, g in frames)  # goals never before the frame
    assert any(t == g for _, t, g in pairs)  # a frame that is its own goal: distance zero
    z_now, z_goal, steps = samples[1]
    e, t, g = pairs[1]
    assert torch.equal(z_now, episodes[e].z[t].float()) and torch.equal(z_goal, episodes[e].z[g].float())
    assert steps == g - t


def test_distance_is_non_negative_broadcasts_one_goal_and_checks_shapes():
    head = LatentDistance(LatentDistanceConfig(num_tokens=4, embed_dim=8, token_dim=3, width=16, max_steps=10))
    z, goal = torch.randn(6, 4, 8), torch.randn(1, 4, 8)
    d = head(z, goal)
    assert d.shape == (6,) and (d >= 0).all()
    assert torch.allclose(d, head(z, goal.expand(6, -1, -1)))
    assert torch.allclose(d, head.fraction(z, goal).clamp(min=0) * 10)
    with pytest.raises(ValueError, match=r"frames \[B, 4, 8\]"):
        head(torch.randn(6, 5, 8), goal)
    with pytest.raises(ValueError, match="goals"):
        head(z, torch.randn(2, 4, 8))
    # the loss clips targets at max_steps: a 50-step pair counts like a 10-step one
    assert torch.isclose(head.loss(z[:1], goal, torch.tensor([50])), head.loss(z[:1], goal, torch.tensor([10])))


def test_rank_correlation_and_validation_scores_the_order_to_the_last_frame():
    assert rank_correlation(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([30.0, 20.0, 10.0])) == pytest.approx(1.0)
    assert rank_correlation(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([30.0, 20.0, 10.0])) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 1.0])))

    class StepsToGo(torch.nn.Module):  # a distance that is exactly the steps left: the first feature counts down
        cfg = LatentDistanceConfig(num_tokens=4, embed_dim=8, max_steps=64)

        def forward(self, z, z_goal):
            return (z[:, 0, 0] - z_goal[:, 0, 0]).abs()

    episode = _episode(6)
    episode.z[:, 0, 0] = torch.arange(6, 0, -1).half()
    errors = held_out_errors(StepsToGo(), StepSamples([episode], 1, 0), "cpu", batch_size=4, max_batches=2)
    assert errors["val/rank_to_last"] == pytest.approx(1.0)
    assert errors["val/steps_mae"] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def world_model_dir(tmp_path_factory) -> Path:
    return finetune_tiny_world_model(tmp_path_factory.mktemp("finetune"))


def _distance_cfg(tmp_path: Path, world_model_dir: Path, **overrides):
    return compose_on_fixture("train_latent_distance", tmp_path, OmegaConf.merge({
        "world_model": str(world_model_dir), "output_dir": str(tmp_path / "distance"),
        "data": {"policies": None}, "latent_distance": {"token_dim": 8, "width": 32, "max_steps": 16},
        "train": {"steps": 80, "batch_size": 16, "log_every": 20, "val_every": 40, "checkpoint_every": 1000,
                  "val_batches": 2},
        "optim": {"warmup_steps": 5, "lr": 3e-3}}, overrides))


def test_training_lowers_the_loss_and_the_checkpoint_is_the_same_world_model_plus_the_distance(
        tmp_path, world_model_dir):
    ckpt = train_latent_distance(_distance_cfg(tmp_path, world_model_dir))
    source, trained = WorldModel.from_checkpoint(world_model_dir), WorldModel.from_checkpoint(ckpt)
    assert source.latent_distance is None and isinstance(trained.latent_distance, LatentDistance)
    for prefix in ("encoder", "predictor"):  # copied unchanged
        a, b = split_prefix(load_weights(world_model_dir), prefix), split_prefix(load_weights(ckpt), prefix)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    from vjepa_ac import embedding_cache
    from vjepa_ac.subgoal_prior_training import demonstrations
    cfg = _distance_cfg(tmp_path, world_model_dir)
    dataset, kept = demonstrations(cfg, "train", trained.resolution)
    episodes = embedding_cache.episode_latents(dataset, kept, trained.latents, tmp_path / "cache", 16, True, "cpu")
    samples = StepSamples(episodes, cfg.hindsight.future_goals, cfg.seed)
    z_now, z_goal, steps = (torch.stack(c) for c in zip(*(samples[i] for i in range(len(samples)))))
    torch.manual_seed(1)
    untrained = LatentDistance(trained.latent_distance.cfg)
    with torch.no_grad():
        assert trained.latent_distance.loss(z_now, z_goal, steps) < 0.8 * untrained.loss(z_now, z_goal, steps)
    assert torch.allclose(trained.distance(z_now[:3], z_goal[:3]), trained.latent_distance(z_now[:3], z_goal[:3]))
    with pytest.raises(ValueError, match="no learned latent distance"):
        source.distance(z_now[:1], z_goal[:1])
    # a goal-state head trained over it keeps the distance (it reads latents alone)
    from vjepa_ac.state_head_training import train_state_head

    head = train_state_head(compose_on_fixture("train_state_head", tmp_path, {
        "world_model": str(ckpt), "output_dir": str(tmp_path / "head"), "state_head": {"token_dim": 8, "width": 32},
        "train": {"steps": 2, "batch_size": 8, "val_every": 1000, "checkpoint_every": 1000},
        "optim": {"warmup_steps": 1}}))
    reloaded = WorldModel.from_checkpoint(head)
    assert reloaded.state_head is not None
    assert torch.equal(reloaded.distance(z_now[:3], z_goal[:3]), trained.distance(z_now[:3], z_goal[:3]))
    # a distance of another size trains over a checkpoint that holds one: the old one is not loaded
    again = train_latent_distance(_distance_cfg(tmp_path, world_model_dir, world_model=str(head),
                                                output_dir=str(tmp_path / "again"), latent_distance={"width": 16},
                                                train={"steps": 2}, optim={"warmup_steps": 1}))
    again = WorldModel.from_checkpoint(again)
    assert again.latent_distance.cfg.width == 16 and again.state_head is not None


class DistanceStub:
    """A world model whose latents are the state's position, whose rollout integrates the actions, and whose
    learned distance counts only x: the L1 energy also weighs y, the learned one does not."""

    privileged, views, action_dim, state_dim = False, ("pixels",), 7, 7
    latent_distance = object()  # present

    def rollout(self, z, state, actions):
        return (z[:, None, :, :] + actions.cumsum(1)[:, :, None, :3])

    def distance(self, z, z_goal):
        return (z[:, 0, 0] - z_goal[:, 0, 0]).abs() * 100


def test_a_learned_latent_energy_steers_by_the_world_models_distance_of_the_predictions():
    z_now, z_goal, state = torch.zeros(1, 1, 3), torch.tensor([[[0.1, 0.1, 0.0]]]), torch.zeros(1, 7)
    plans = {}
    for latent_energy in ("l1", "learned"):
        planner = CEM(LOW, -LOW, horizon=2, num_samples=200, num_elites=10, iterations=5, latent_energy=latent_energy,
                      energy="final", seed=0)
        plans[latent_energy] = planner.plan(DistanceStub(), z_now, state, z_goal).sum(0)
        assert planner.goal_energy(DistanceStub(), z_now, z_goal) == pytest.approx(
            10.0 if latent_energy == "learned" else 0.2 / 3)
    assert plans["l1"][0] > 0.07 and plans["l1"][1] > 0.07  # toward the goal in x and y
    assert plans["learned"][0] > 0.07  # toward the goal in x; y is free
    learned = CEM(LOW, -LOW, horizon=2, latent_energy="learned")
    energies = learned.score(DistanceStub(), z_now, state, z_goal, torch.zeros(2, 2, 7).index_fill_(2, torch.tensor([0]), 0.05))
    assert torch.allclose(energies[:1], torch.tensor([0.0]), atol=1e-4)
    with pytest.raises(ValueError, match="learned latent distance"):
        learned.plan(WorldModel.from_config({"encoder": ENCODER, "pool": 2, "predictor": {"dim": 48, "depth": 1,
                                                                                           "heads": 2}}),
                     torch.zeros(1, 4, 48), state, torch.zeros(1, 4, 48))
    with pytest.raises(ValueError, match="latent_energy must be one of"):
        CEM(LOW, -LOW, latent_energy="cosine")
