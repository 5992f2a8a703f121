import pytest
import torch
from transformers import VJEPA2Config, VJEPA2Model

from vjepa_ac.checkpoint import CheckpointMismatchError, save_checkpoint
from vjepa_ac.models import MaskedPredictor, VideoEncoder


def tiny_config(**kw) -> VJEPA2Config:
    base = dict(crop_size=32, patch_size=8, frames_per_clip=4, tubelet_size=2, hidden_size=48,
                num_attention_heads=2, num_hidden_layers=2, pred_hidden_size=24, pred_num_attention_heads=2,
                pred_num_hidden_layers=2)
    return VJEPA2Config(**{**base, **kw})


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = VJEPA2Model(tiny_config()).eval()
    folder = tmp_path_factory.mktemp("hf")
    model.save_pretrained(folder)
    return folder, model


def test_from_pretrained_matches_transformers_forward(hf_folder):
    folder, hf = hf_folder
    enc = VideoEncoder.from_pretrained(folder).eval()
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = enc(video), hf(video, skip_predictor=True).last_hidden_state
    assert ours.shape == (2, 2 * 4 * 4, 48)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # a single frame is a 2-frame tubelet of itself, as transformers does
    with torch.no_grad():
        one, theirs_one = enc(video[:, :1]), hf(video[:, :1], skip_predictor=True).last_hidden_state
    assert one.shape == (2, 16, 48)
    torch.testing.assert_close(one, theirs_one, atol=1e-5, rtol=1e-5)


def test_save_pretrained_round_trip_with_predictor(tmp_path, hf_folder):
    enc = VideoEncoder(tiny_config()).eval()
    pred = MaskedPredictor(tiny_config())
    enc.save_pretrained(tmp_path, predictor=pred)
    hf = VJEPA2Model.from_pretrained(tmp_path).eval()
    video = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc(video), hf(video, skip_predictor=True).last_hidden_state, atol=1e-5, rtol=1e-5)
    assert torch.equal(hf.predictor.embeddings.mask_tokens, pred.embeddings.mask_tokens)


def test_masked_predictor_matches_transformers_predictor(hf_folder):
    """Same weights, same masks: our predictor on the gathered context == VJEPA2Predictor."""
    _, hf = hf_folder
    pred = MaskedPredictor(tiny_config())
    pred.load_state_dict(hf.predictor.state_dict())
    torch.manual_seed(1)
    hidden = torch.randn(2, 32, 48)
    perm = torch.stack([torch.randperm(32) for _ in range(2)])
    ctx, tgt = perm[:, :20].sort(1).values, perm[:, 20:].sort(1).values
    with torch.no_grad():
        theirs = hf.predictor(hidden, [ctx], [tgt]).last_hidden_state
        ours = pred(torch.gather(hidden, 1, ctx[..., None].expand(-1, -1, 48)), ctx, tgt, mask_index=1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_context_encoding_never_sees_target_pixels():
    torch.manual_seed(0)
    enc = VideoEncoder(tiny_config()).eval()
    video = torch.randn(1, 4, 3, 32, 32)
    # target: the top-left 2x2 patches (16x16 pixels) of every frame; context: the rest
    grid = torch.arange(32).view(2, 4, 4)
    target = grid[:, :2, :2].reshape(1, -1)
    context = torch.tensor([[i for i in range(32) if i not in target]])
    changed = video.clone()
    changed[..., :16, :16] = torch.randn(1, 4, 3, 16, 16) * 5
    with torch.no_grad():
        a, b = enc(video, context), enc(changed, context)
        full_a, full_b = enc(video), enc(changed)
    assert a.shape == (1, 24, 48)
    assert torch.equal(a, b)
    assert not torch.allclose(full_a[:, context[0]], full_b[:, context[0]])  # full attention would leak
    # the masked pass is the same function as the full one restricted to the visible tokens
    with torch.no_grad():
        all_ids = torch.arange(32)[None]
        torch.testing.assert_close(enc(video, all_ids), full_a)


def test_bad_inputs_and_mismatched_checkpoint(tmp_path):
    enc = VideoEncoder(tiny_config())
    with pytest.raises(ValueError, match="tubelet_size=2"):
        enc(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="crop_size=32"):
        enc(torch.randn(1, 4, 3, 48, 48))
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"model": {k: v for k, v in tiny_config(hidden_size=64).to_dict().items()
                                      if k in ("crop_size", "patch_size", "frames_per_clip", "hidden_size",
                                               "num_attention_heads", "num_hidden_layers")}})
    save_checkpoint(tmp_path / "c", {"target_encoder": enc}, cfg)
    with pytest.raises(CheckpointMismatchError, match=r"embeddings.patch_embeddings.proj.weight: checkpoint \(48"):
        VideoEncoder.from_checkpoint(tmp_path / "c")
