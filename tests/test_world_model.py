import numpy as np
import pytest
import torch

from vjepa_ac import WorldModel
from vjepa_ac.checkpoint import save_checkpoint
from vjepa_ac.state_action import STATE_HIGH, STATE_LOW

SPEC = {
    "encoder": {"patch_size": 8, "crop_size": 32, "frames_per_clip": 2, "tubelet_size": 2, "hidden_size": 48,
                "num_attention_heads": 2, "num_hidden_layers": 1},
    "pool": 2,
    "predictor": {"dim": 48, "depth": 2, "heads": 2},
}


@pytest.fixture(scope="module")
def wm() -> WorldModel:
    return WorldModel.from_config(SPEC, seed=0)


def _frames(B: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(B, 32, 32, 3), dtype=np.uint8)


def _actions(B: int, H: int, seed: int = 0) -> torch.Tensor:
    return 0.05 * torch.randn(B, H, 7, generator=torch.Generator().manual_seed(seed))


def test_encode_shape_and_single_frame_independence(wm):
    frames = _frames(3)
    z = wm.encode(frames)
    assert z.shape == (3, 4, 48)  # (32/8 / pool 2)^2 tokens
    torch.testing.assert_close(wm.encode(frames[1:2])[0], z[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wm.encode(torch.from_numpy(frames)), z)


def test_rollout_shape_and_batched_equals_per_candidate(wm):
    z = wm.encode(_frames(1))
    state = torch.rand(1, 7)
    actions = _actions(5, 3)
    batched = wm.rollout(z, state, actions)
    assert batched.shape == (5, 3, 4, 48)
    for b in range(5):
        single = wm.rollout(z, state, actions[b : b + 1])
        torch.testing.assert_close(batched[b : b + 1], single, atol=1e-5, rtol=1e-5)
    expanded = wm.rollout(z.expand(5, -1, -1), state.expand(5, -1), actions)
    torch.testing.assert_close(batched, expanded, atol=1e-5, rtol=1e-5)


def test_rollout_integrates_state_and_matches_teacher_forced_forward(wm):
    """Rollout step h sees state + sum of earlier actions and its own previous predictions."""
    z = wm.encode(_frames(1))
    state = torch.rand(1, 7)
    actions = _actions(2, 2)
    out = wm.rollout(z, state, actions)
    with torch.no_grad():
        zs = torch.stack([z.expand(2, -1, -1), out[:, 0]], dim=1)
        states = torch.stack([state.expand(2, -1), state + actions[:, 0]], dim=1)
        full = wm.predictor(zs, states, actions)[0]
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)


def test_rollout_with_states_integrates_or_predicts_the_robot_state(wm, tmp_path):
    z, state, actions = wm.encode(_frames(1)), torch.rand(1, 7) * 0.5, _actions(3, 2)
    latents, states = wm.rollout_with_states(z, state, actions)
    assert not wm.predicts_state
    torch.testing.assert_close(latents, wm.rollout(z, state, actions))
    bounds = torch.as_tensor(STATE_LOW), torch.as_tensor(STATE_HIGH)
    torch.testing.assert_close(states, (state[:, None] + actions.cumsum(1)).clamp(*bounds))  # integrated
    learned = WorldModel.from_config({**SPEC, "predictor": {**SPEC["predictor"], "predicts_state": True}}, seed=0)
    torch.nn.init.normal_(learned.predictor.state_head.weight, std=0.5)
    assert learned.predicts_state
    z = learned.encode(_frames(1))
    latents, states = learned.rollout_with_states(z, state, actions)
    with torch.no_grad():  # step by step: each predicted state is the next step's input
        cache = learned.predictor.new_cache()
        first, s1 = learned.predictor.step(z, state, actions[:, 0], cache)
        s1 = s1.clamp(*bounds)
        second, s2 = learned.predictor.step(first, s1, actions[:, 1], cache)
    torch.testing.assert_close(states[:, 0], s1)
    torch.testing.assert_close(states[:, 1], s2.clamp(*bounds))
    torch.testing.assert_close(latents[:, 1], second)
    assert not torch.allclose(states, (state[:, None] + actions.cumsum(1)), atol=1e-3)  # not integrated
    # the checkpoint round trip keeps the state head
    save_checkpoint(tmp_path / "ckpt", {"encoder": learned.latents.encoder, "predictor": learned.predictor},
                    config={"world_model": {**SPEC, "predictor": {**SPEC["predictor"], "predicts_state": True}}})
    reloaded = WorldModel.from_checkpoint(tmp_path / "ckpt")
    torch.testing.assert_close(reloaded.rollout_with_states(z, state, actions)[1], states)


def test_rollout_supports_gradients_through_actions(wm):
    z = wm.encode(_frames(1))
    actions = _actions(4, 2).requires_grad_(True)
    loss = wm.rollout(z, torch.zeros(1, 7), actions).abs().mean()
    loss.backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0


def test_from_checkpoint_round_trip(wm, tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"encoder": wm.latents.encoder, "predictor": wm.predictor},
                    config={"world_model": SPEC, "note": "test"})
    loaded = WorldModel.from_checkpoint(tmp_path / "ckpt")
    frames, actions = _frames(2), _actions(2, 2)
    torch.testing.assert_close(loaded.encode(frames), wm.encode(frames))
    z = wm.encode(frames[:1])
    torch.testing.assert_close(loaded.rollout(z, torch.zeros(1, 7), actions), wm.rollout(z, torch.zeros(1, 7), actions))


def test_checkpoint_with_other_encoder_width_fails_clearly(wm, tmp_path):
    other = {**SPEC, "encoder": {**SPEC["encoder"], "hidden_size": 64}}
    save_checkpoint(tmp_path / "ckpt", {"encoder": wm.latents.encoder, "predictor": wm.predictor},
                    config={"world_model": other})
    with pytest.raises(ValueError, match="wrong shape"):
        WorldModel.from_checkpoint(tmp_path / "ckpt")


def test_bad_inputs_name_the_dimensions(wm):
    z = wm.encode(_frames(1))
    with pytest.raises(ValueError, match=r"action must be \[\.\.\., 7\], got \(4, 2, 6\)"):
        wm.rollout(z, torch.zeros(1, 7), torch.zeros(4, 2, 6))
    with pytest.raises(ValueError, match=r"state must be \[\.\.\., 7\]"):
        wm.rollout(z, torch.zeros(1, 8), torch.zeros(4, 2, 7))
    with pytest.raises(ValueError, match="B = 4"):
        wm.rollout(z.expand(3, -1, -1), torch.zeros(1, 7), torch.zeros(4, 2, 7))
    with pytest.raises(ValueError, match="32x32"):
        wm.encode(np.zeros((1, 64, 64, 3), dtype=np.uint8))
