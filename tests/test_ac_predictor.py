import pytest
import torch

from vjepa_ac.models.ac_predictor import ACPredictor, ACPredictorConfig


def _predictor(seed: int = 0, predicts_state: bool = False) -> ACPredictor:
    torch.manual_seed(seed)
    return ACPredictor(ACPredictorConfig(embed_dim=24, grid=(2, 3), dim=48, depth=2, heads=2,
                                         predicts_state=predicts_state)).eval()


def _inputs(B=2, T=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, 6, 24, generator=g), torch.randn(B, T, 7, generator=g), torch.randn(B, T, 7, generator=g)


def test_forward_shape_and_layer_normed_output():
    pred = _predictor()
    z, s, a = _inputs()
    out = pred(z, s, a)[0]
    assert out.shape == z.shape
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 4, 6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("which", ["z", "s", "a"])
def test_block_causal_changing_step_t_plus_1_leaves_earlier_outputs(which):
    pred = _predictor()
    z, s, a = _inputs()
    t = 1
    out = pred(z, s, a)[0]
    changed = {"z": z.clone(), "s": s.clone(), "a": a.clone()}
    changed[which][:, t + 1 :] += 5.0 * torch.randn_like(changed[which][:, t + 1 :])
    out2 = pred(changed["z"], changed["s"], changed["a"])[0]
    torch.testing.assert_close(out2[:, : t + 1], out[:, : t + 1])
    assert not torch.allclose(out2[:, t + 1 :], out[:, t + 1 :], atol=1e-4)


def test_outputs_depend_on_actions_and_states_of_the_same_step():
    pred = _predictor()
    z, s, a = _inputs()
    out = pred(z, s, a)[0]
    a2 = a.clone()
    a2[:, 0] += 1.0
    s2 = s.clone()
    s2[:, 0] += 1.0
    assert not torch.allclose(pred(z, s, a2)[0][:, 0], out[:, 0], atol=1e-4)
    assert not torch.allclose(pred(z, s2, a)[0][:, 0], out[:, 0], atol=1e-4)


def test_incremental_steps_with_cache_equal_full_forward():
    pred = _predictor()
    z, s, a = _inputs(T=3)
    full = pred(z, s, a)[0]
    cache = pred.new_cache()
    steps = [pred.step(z[:, t], s[:, t], a[:, t], cache)[0] for t in range(3)]
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_step_broadcasts_a_shared_first_frame_over_candidates():
    pred = _predictor()
    z, s, a = _inputs(B=3, T=1)
    shared = pred.step(z[:1, 0], s[:1, 0], a[:, 0], pred.new_cache())[0]
    copied = pred.step(z[:1, 0].expand(3, -1, -1), s[:1, 0].expand(3, -1), a[:, 0], pred.new_cache())[0]
    torch.testing.assert_close(shared, copied)


def test_rope_makes_frame_tokens_position_aware():
    pred = _predictor()
    z, s, a = _inputs(B=1, T=1)
    z_same = z[:, :, :1].expand(-1, -1, 6, -1)  # identical content in every token
    out = pred(z_same, s, a)[0][0, 0]
    assert not torch.allclose(out[0], out[1], atol=1e-4)


def test_bad_dimensions_name_both_numbers():
    pred = _predictor()
    z, s, a = _inputs()
    with pytest.raises(ValueError, match=r"action dimension is 6, but the predictor expects 7"):
        pred(z, s, a[..., :6])
    with pytest.raises(ValueError, match=r"state dimension is 8, but the predictor expects 7"):
        pred(z, torch.cat([s, s[..., :1]], -1), a)
    with pytest.raises(ValueError, match=r"\(6, 32\).*expects \(6, 24\)"):
        pred(torch.randn(2, 4, 6, 32), s, a)
    with pytest.raises(ValueError, match="not divisible"):
        ACPredictorConfig(embed_dim=8, grid=(2, 2), dim=50, heads=4)


def test_input_stats_normalise_states_and_actions_and_keep_constant_dims():
    pred = _predictor()
    states = torch.randn(100, 7) * torch.tensor([2.0, 0.5, 1, 1, 1, 1, 0]) + 3.0
    actions = torch.randn(100, 7) * torch.tensor([0.05, 0.05, 0.05, 0, 0, 0, 1.0])
    pred.set_input_stats(states, actions)
    assert torch.allclose(pred.state_mean, states.mean(0))
    assert pred.state_std[6] == 1 and pred.action_std[3] == 1  # constant dims are not blown up
    assert 0.03 < pred.action_std[0] < 0.07
    z, s, a = _inputs()
    out = pred(z, s, a)[0]
    assert torch.isfinite(out).all()


def test_a_predictor_of_states_predicts_each_next_state_causally_and_step_by_step_alike():
    assert _predictor()(*_inputs())[1] is None and _predictor().step(*(x[:, 0] for x in _inputs()),
                                                                      _predictor().new_cache())[1] is None
    pred = _predictor(predicts_state=True)
    torch.nn.init.normal_(pred.state_head.weight, std=0.5)  # a trained head: a visible change
    z, s, a = _inputs(T=3)
    latents, states = pred(z, s, a)
    assert states.shape == s.shape and latents.shape == z.shape
    changed = s.clone()
    changed[:, 2] += 3.0
    torch.testing.assert_close(pred(z, changed, a)[1][:, :2], states[:, :2])  # block-causal
    assert not torch.allclose(pred(z, s, a + 1.0)[1][:, 0], states[:, 0], atol=1e-4)  # depends on the action
    cache = pred.new_cache()
    steps = [pred.step(z[:, t], s[:, t], a[:, t], cache)[1] for t in range(3)]
    torch.testing.assert_close(torch.stack(steps, 1), states, atol=1e-5, rtol=1e-5)
    pred.state_head.weight.data.zero_()
    zeroed_latents, zeroed_states = pred(z, s, a)
    torch.testing.assert_close(zeroed_states, s)  # a zero head predicts "no change"
    torch.testing.assert_close(zeroed_latents, latents)  # the state head reads the latents' pass, adds nothing to it
