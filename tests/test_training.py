import math

import pytest
import torch
from torch import nn

from vjepa_ac.train_loop import device_peak_flops
from vjepa_ac.training import (
    CollapseMonitor,
    NonFiniteLossError,
    ResumableSampler,
    adamw_param_groups,
    check_finite,
    ema_update,
    embedding_stats,
    linear,
    set_hparams,
    warmup_cosine,
)


def test_warmup_cosine_shape():
    f = lambda s: warmup_cosine(s, total_steps=100, warmup_steps=10, base=1.0, start=0.1, final=0.01)
    assert f(0) == pytest.approx(0.1) and f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.01)
    assert f(5) == pytest.approx(0.55)
    assert f(55) == pytest.approx(0.01 + 0.99 * 0.5)
    assert linear(50, 100, 0.04, 0.4) == pytest.approx(0.22) and linear(500, 100, 0.04, 0.4) == 0.4


def test_no_decay_on_biases_and_norms():
    m = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    groups = adamw_param_groups(m, 0.05)
    assert [p.shape for p in groups[0]["params"]] == [torch.Size([4, 3])]
    assert len(groups[1]["params"]) == 3
    opt = torch.optim.AdamW(groups)
    set_hparams(opt, lr=0.3, weight_decay=0.2)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.2, 0.0]
    assert all(g["lr"] == 0.3 for g in opt.param_groups)


def test_ema_update():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    expected = 0.9 * a.weight.detach() + 0.1 * b.weight.detach()
    ema_update(a, b, 0.9)
    assert torch.allclose(a.weight, expected)


def test_resumable_sampler_shards_and_skips():
    full = list(ResumableSampler(10, seed=3))
    assert sorted(full) == list(range(10))
    r0, r1 = ResumableSampler(10, seed=3, rank=0, world_size=2), ResumableSampler(10, seed=3, rank=1, world_size=2)
    assert sorted(list(r0) + list(r1)) == list(range(10))
    s = ResumableSampler(10, seed=3)
    s.set_epoch(0, skip=4)
    assert list(s) == full[4:]
    s.set_epoch(1)
    assert list(s) != full


def test_nan_guard_names_step_batch_and_checkpoint():
    check_finite(torch.tensor(1.0), 3, "batch 2", None)
    with pytest.raises(NonFiniteLossError, match=r"step 7 \(batch 5\).*kept at /x/ckpt"):
        check_finite(torch.tensor(math.nan), 7, "batch 5", "/x/ckpt")


def test_embedding_stats_detect_collapse():
    torch.manual_seed(0)
    std, rank = embedding_stats(torch.randn(32, 5, 16))
    assert std > 0.1 and rank > 8
    std_c, rank_c = embedding_stats(torch.ones(32, 5, 16) + 1e-6 * torch.randn(32, 5, 16))
    assert std_c < 1e-3
    mon = CollapseMonitor()
    assert mon.update(std, rank, 0) == []
    with pytest.warns(RuntimeWarning, match="collapse"):
        assert len(mon.update(std_c, 1.0, 1)) == 2


def test_device_peak_is_configured_known_or_absent():
    assert device_peak_flops(0.12, torch.device("cpu"), bf16=False) == pytest.approx(1.2e11)
    assert device_peak_flops(None, torch.device("cpu"), bf16=False) is None
