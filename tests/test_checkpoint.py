import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from vjepa_ac.checkpoint import (
    CheckpointMismatchError,
    load_config,
    load_state_into,
    load_train_state,
    load_weights,
    save_checkpoint,
    split_prefix,
)


def _model(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width), nn.Linear(width, 2))


def test_round_trip_weights_config_optimizer_rng(tmp_path):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).mean().backward()
        opt.step()
    cfg = OmegaConf.create({"a": 1, "b": "${a}"})
    save_checkpoint(tmp_path / "ckpt", {"net": model}, cfg, optimizer=opt, step=3, extra={"k": 1.5})
    after_save = torch.rand(4)

    model2 = _model()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.5)
    load_state_into(model2, split_prefix(load_weights(tmp_path / "ckpt"), "net"))
    state = load_train_state(tmp_path / "ckpt", opt2)
    assert state == {"step": 3, "extra": {"k": 1.5}}
    assert torch.equal(torch.rand(4), after_save)  # RNG restored to the moment of saving
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.95) and opt2.param_groups[0]["lr"] == 1e-2
    for p, q in zip(model.parameters(), model2.parameters()):
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][k], opt2.state[q][k])
    assert load_config(tmp_path / "ckpt").b == 1  # resolved
    assert not (tmp_path / "ckpt.tmp").exists() and not (tmp_path / "ckpt.old").exists()


def test_overwrite_keeps_single_directory_and_old_fallback(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "c", {"net": model})
    with torch.no_grad():
        model[0].weight.add_(1.0)
    save_checkpoint(tmp_path / "c", {"net": model})
    assert torch.equal(load_weights(tmp_path / "c")["net.0.weight"], model[0].weight)
    # an interrupted swap leaves only <dir>.old: loading falls back to it
    (tmp_path / "c").rename(tmp_path / "c.old")
    assert torch.equal(load_weights(tmp_path / "c")["net.0.weight"], model[0].weight)


def test_mismatch_lists_every_bad_parameter(tmp_path):
    save_checkpoint(tmp_path / "c", {"net": _model(4)})
    tensors = split_prefix(load_weights(tmp_path / "c"), "net")
    tensors["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as e:
        load_state_into(_model(8), tensors)
    msg = str(e.value)
    assert "0.weight: checkpoint (4, 3) vs model (8, 3)" in msg
    assert "2.weight" in msg and "unexpected (1): extra.weight" in msg


def test_weights_only_checkpoint_cannot_resume(tmp_path):
    save_checkpoint(tmp_path / "c", {"net": _model()})
    with pytest.raises(FileNotFoundError, match="cannot be resumed"):
        load_train_state(tmp_path / "c")
