import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file, save_file

from vjepa_ac.checkpoint import load_train_state, load_weights
from vjepa_ac.masks import MaskSet, sample_masks
from vjepa_ac.models.encoder import vjepa2_config
from vjepa_ac.pretrain import JEPA, forward_loss, pretrain, validate_config
from vjepa_ac.training import (NonFiniteLossError, adamw_param_groups, cleanup_distributed, ema_update, set_hparams,
                               setup_distributed)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = os.path.join(REPO, "configs")
SMALL = ["model.crop_size=32", "model.patch_size=8", "model.frames_per_clip=4", "model.hidden_size=48",
         "model.num_attention_heads=2", "model.num_hidden_layers=2", "model.pred_hidden_size=24",
         "model.pred_num_attention_heads=2", "model.pred_num_hidden_layers=2", "train.batch_size=4",
         "train.steps=6", "optim.warmup_steps=2", "train.log_every=1", "train.checkpoint_every=3",
         "data.num_workers=0", "threads=1", "device=cpu"]


def small_cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=os.path.abspath(CONFIGS), version_base=None):
        return compose("pretrain", overrides=SMALL + [f"output_dir={tmp_path}", *overrides])


def clips(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 3, 32, 32, generator=g)  # a static scene per clip, plus noise over time
    return list(base + 0.1 * torch.randn(n, 4, 3, 32, 32, generator=g))


def losses(run_dir):
    return [json.loads(line)["loss"] for line in open(os.path.join(run_dir, "metrics.jsonl"))]


class CrashAfter(torch.utils.data.Dataset):
    def __init__(self, items, crash_at):
        self.items, self.crash_at, self.calls = items, crash_at, 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.calls += 1
        if self.calls > self.crash_at:
            raise RuntimeError("simulated crash")
        return self.items[i]


def test_resume_continues_exactly(tmp_path):
    full = pretrain(small_cfg(tmp_path / "a"), dataset=clips())
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(small_cfg(tmp_path / "b"), dataset=CrashAfter(clips(), crash_at=3 * 4))  # dies in step 4
    assert load_train_state(tmp_path / "b" / "checkpoint", restore_rng=False)["step"] == 3
    resumed = pretrain(small_cfg(tmp_path / "b", "resume=true"), dataset=clips())
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(la) == len(lb) == 6 and la[0] != la[-1]
    np.testing.assert_allclose(la, lb, rtol=1e-6)
    wa, wb = load_weights(full), load_weights(resumed)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_loader_workers_change_nothing(tmp_path):
    """Masks are drawn per (epoch, batch), not per worker; the one persistent loader crosses epochs."""
    pretrain(small_cfg(tmp_path / "a"), dataset=clips())  # 4 steps per epoch: 6 steps cross into epoch 1
    pretrain(small_cfg(tmp_path / "b", "data.num_workers=2"), dataset=clips())
    np.testing.assert_allclose(losses(tmp_path / "a"), losses(tmp_path / "b"), rtol=1e-6)
    log = (tmp_path / "b" / "train.log").read_text()
    assert "step 6 loss" in log and "clips_per_s" in log and "gflops_per_s" in log
    assert "device peak" not in log  # a CPU has no known peak unless peak_tflops is set


def test_nan_stops_with_step_and_batch_and_keeps_last_checkpoint(tmp_path):
    data = clips()
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0)).tolist()  # ResumableSampler epoch 0
    data[order[13]] = torch.full_like(data[0], float("nan"))  # in step 4's batch
    with pytest.raises(NonFiniteLossError, match=r"step 3 \(epoch 0, batch 3\).*kept at .*checkpoint"):
        pretrain(small_cfg(tmp_path), dataset=data)
    assert load_train_state(tmp_path / "checkpoint", restore_rng=False)["step"] == 3


@pytest.mark.parametrize("override, key", [
    ("model.patch_size=7", "model.patch_size=7 does not divide model.crop_size=32"),
    ("data.frames_per_clip=5", "data.frames_per_clip=5 is not divisible by model.tubelet_size=2"),
    ("masks.0.spatial_scale=1.5", r"masks\[0\].spatial_scale"),
])
def test_config_errors_fail_before_training(tmp_path, override, key):
    cfg = small_cfg(tmp_path, override, "data.root=/nonexistent")  # data is never touched
    with pytest.raises(ValueError, match=key):
        validate_config(cfg)
    with pytest.raises(ValueError, match=key):
        pretrain(cfg)


def test_loop_config_errors_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="optim.warmup_steps=60 exceeds train.steps=6"):
        pretrain(small_cfg(tmp_path, "optim.warmup_steps=60", "data.root=/nonexistent"))


def test_predictor_input_ignores_target_pixels(tmp_path):
    cfg = small_cfg(tmp_path)
    torch.manual_seed(0)
    model = JEPA(vjepa2_config(cfg.model)).eval()
    ctx, tgt = sample_masks(1, (2, 4, 4), [MaskSet(2, 0.3)], np.random.default_rng(0))[0]
    video = clips(1)[0][None]
    changed = video.clone()
    for token in tgt[0].tolist():  # overwrite every pixel of every target patch
        t, h, w = token // 16, (token // 4) % 4, token % 4
        changed[0, 2 * t:2 * t + 2, :, 8 * h:8 * h + 8, 8 * w:8 * w + 8] = 9.0
    seen = []
    model.predictor.register_forward_pre_hook(lambda m, args: seen.append([a.clone() for a in args]))
    with torch.no_grad():
        out_a, out_b = model(video, [(ctx, tgt)]), model(changed, [(ctx, tgt)])
        full_a, full_b = model.encoder(video), model.encoder(changed)
    assert all(torch.equal(x, y) for x, y in zip(seen[0], seen[1]))
    assert torch.equal(out_a[0], out_b[0])
    assert not torch.allclose(full_a, full_b)  # the targets themselves did change


def _steps(cfg, video, masks, rank, world, result_path):
    """Three steps on this rank's share of the batch; rank 0 saves the weights."""
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    info = setup_distributed("cpu")
    torch.manual_seed(0)
    model = JEPA(vjepa2_config(cfg.model))
    target = copy.deepcopy(model.encoder).requires_grad_(False)
    opt = torch.optim.AdamW(adamw_param_groups(model, 0.04), lr=1e-3)
    ddp = DistributedDataParallel(model) if info.enabled else model
    per = video.shape[0] // world
    sl = slice(rank * per, (rank + 1) * per)
    for _ in range(3):  # what vjepa_ac.train_loop does around Pretraining.loss
        set_hparams(opt, 1e-3, 0.04)
        loss, _ = forward_loss(ddp, target, video[sl], [(c[sl], t[sl]) for c, t in masks],
                               torch.autocast("cpu", enabled=False))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(target, model.encoder, 0.9)
    if rank == 0:
        save_file({**{f"m.{k}": v for k, v in model.state_dict().items()},
                   **{f"t.{k}": v for k, v in target.state_dict().items()}}, result_path)
    del ddp  # before the process group goes: see cleanup_distributed
    cleanup_distributed()


def _ddp_worker(rank, world, port, cfg, video, masks, result_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    _steps(cfg, video, masks, rank, world, result_path)


def test_ddp_two_cpu_processes_match_single_process(tmp_path, spawn, free_port):
    cfg = small_cfg(tmp_path)
    video = torch.stack(clips(4))
    masks = sample_masks(4, (2, 4, 4), [MaskSet(4, 0.15), MaskSet(1, 0.6)], np.random.default_rng(0))
    _steps(cfg, video, masks, 0, 1, str(tmp_path / "single.safetensors"))
    spawn(_ddp_worker, (2, free_port, cfg, video, masks, str(tmp_path / "ddp.safetensors")), nprocs=2)
    single, ddp = load_file(str(tmp_path / "single.safetensors")), load_file(str(tmp_path / "ddp.safetensors"))
    init = JEPA(vjepa2_config(cfg.model)).state_dict()
    assert any(not torch.allclose(init[k], single[f"m.{k}"]) for k in init)  # training moved the weights
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-4, atol=1e-5)


def test_loader_speed_script_prints_before_and_after(tmp_path):
    from vjepa_ac.data.video_io import write_video

    for i in range(2):
        write_video(tmp_path / "videos" / f"{i}.mp4", np.full((16, 32, 32, 3), 40 * i, np.uint8), fps=5)
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "loader_speed.py"),
                             f"data.root={tmp_path / 'videos'}", f"output_dir={tmp_path / 'run'}", "epochs=1",
                             "data.num_workers=0", "train.batch_size=2", "model.crop_size=32"],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| before:" in result.stdout and "| after:" in result.stdout
    assert list((tmp_path / "run" / "frame_cache").glob("*.u8"))
