import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from vjepa_ac import WorldModel, embedding_cache
from vjepa_ac.checkpoint import load_weights, split_prefix
from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.finetune import FinetuneLoss, finetune
from vjepa_ac.models.ac_predictor import ACPredictor, ACPredictorConfig
from vjepa_ac.training import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "lerobot_v30_tiny"
ENCODER = {"patch_size": 8, "crop_size": 32, "frames_per_clip": 2, "tubelet_size": 2, "hidden_size": 48,
           "num_attention_heads": 2, "num_hidden_layers": 1}


class MovingSquare(Dataset):
    """Windows of a white square moved by the actions: state[:2] is its position, action[:2] its step."""

    def __init__(self, n: int = 32, steps: int = 4, action_dim: int = 7, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.start = 0.2 + 0.6 * torch.rand(n, 2, generator=g)
        self.actions = torch.zeros(n, steps - 1, action_dim)
        self.actions[..., :2] = 0.08 * (torch.rand(n, steps - 1, 2, generator=g) * 2 - 1)
        self.steps = steps

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, i: int):
        pos = self.start[i] + torch.cat([torch.zeros(1, 2), self.actions[i, :, :2].cumsum(0)])
        states = torch.zeros(self.steps, 7)
        states[:, :2] = pos
        frames = torch.zeros(self.steps, 32, 32, 3, dtype=torch.uint8)
        for t, (x, y) in enumerate((pos.clamp(0, 1) * 24).long().tolist()):
            frames[t, y : y + 8, x : x + 8] = 255
        return normalize_frames(frames), states, self.actions[i]


class PoisonAfter(Dataset):
    """Returns NaN states once more than `calls` items were read (a corrupt batch mid-run)."""

    def __init__(self, base: Dataset, calls: int):
        self.base, self.calls, self.count = base, calls, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        self.count += 1
        frames, states, actions = self.base[i]
        return (frames, states * float("nan"), actions) if self.count > self.calls else (frames, states, actions)


def _cfg(tmp_path: Path, **overrides):
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose("finetune")
    base = {
        "device": "cpu", "output_dir": str(tmp_path / "run"),
        "encoder": {"source": "random", "config": ENCODER},
        "world_model": {"pool": 2, "predictor": {"dim": 48, "depth": 2, "heads": 2}},
        "data": {"root": None},
        "cache": {"enabled": False, "dir": str(tmp_path / "cache"), "batch_size": 16},
        "train": {"steps": 6, "batch_size": 8, "log_every": 2, "val_every": 1000, "checkpoint_every": 1000},
        "optim": {"warmup_steps": 2, "lr": 1e-3},
    }
    return OmegaConf.merge(cfg, base, overrides)


def _predictor_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return split_prefix(load_weights(run_dir / "checkpoint"), "predictor")


def test_a_few_steps_lower_the_loss(tmp_path):
    cfg = _cfg(tmp_path, train={"steps": 20}, optim={"lr": 2e-3}, cache={"enabled": True})
    data = MovingSquare(32)
    ckpt = finetune(cfg, data, MovingSquare(8, seed=1))
    wm = WorldModel.from_checkpoint(ckpt)
    torch.manual_seed(0)
    untrained = ACPredictor(wm.predictor.cfg)
    batch = [torch.stack(x) for x in zip(*(data[i] for i in range(16)))]
    z = wm.latents(batch[0])
    with torch.no_grad():
        before = sum(FinetuneLoss(untrained, 2)(z, batch[1], batch[2]))
        after = sum(FinetuneLoss(wm.predictor, 2)(z, batch[1], batch[2]))
    assert after < 0.8 * before, (before, after)
    assert torch.all(wm.predictor.action_std[:2] < 0.1) and torch.all(wm.predictor.action_std[2:] == 1)  # from the data
    assert (tmp_path / "run" / "tb").is_dir()
    assert OmegaConf.load(ckpt / "config.yaml").world_model.encoder.hidden_size == 48


def test_a_predictor_of_states_learns_the_logged_next_states(tmp_path):
    cfg = _cfg(tmp_path, train={"steps": 30}, optim={"lr": 2e-3},
               world_model={"predictor": {"predicts_state": True}})
    data = MovingSquare(32)
    ckpt = finetune(cfg, data)
    wm = WorldModel.from_checkpoint(ckpt)
    assert wm.predicts_state
    torch.manual_seed(0)
    untrained = ACPredictor(wm.predictor.cfg)
    for name in ("state_mean", "state_std", "action_std"):  # the same input statistics
        getattr(untrained, name).copy_(getattr(wm.predictor, name))
    batch = [torch.stack(x) for x in zip(*(data[i] for i in range(16)))]
    z = wm.latents(batch[0])
    with torch.no_grad():
        before = FinetuneLoss(untrained, 2)(z, batch[1], batch[2])[2]
        after = FinetuneLoss(wm.predictor, 2)(z, batch[1], batch[2])[2]
        assert FinetuneLoss(ACPredictor(ACPredictorConfig(**{**vars(wm.predictor.cfg), "predicts_state": False})),
                            2)(z, batch[1], batch[2])[2] == 0  # no state output, no state loss
    assert after < 0.8 * before, (before, after)


def test_nan_stops_with_step_keeps_checkpoint_and_resume_matches_uninterrupted(tmp_path):
    data = MovingSquare(32)
    straight = _cfg(tmp_path / "a", train={"checkpoint_every": 3})
    finetune(straight, data)

    interrupted = _cfg(tmp_path / "b", train={"checkpoint_every": 3})
    with pytest.raises(NonFiniteLossError, match=r"at step 4 .*last good checkpoint kept"):
        # before training: item 0 is read by the dims check, every item by the input statistics
        finetune(interrupted, PoisonAfter(data, calls=1 + len(data) + 4 * 8))
    assert load_weights_step(tmp_path / "b" / "run") == 3
    # as if killed between the two renames of a checkpoint swap: resume finds checkpoint.old
    (tmp_path / "b" / "run" / "checkpoint").rename(tmp_path / "b" / "run" / "checkpoint.old")
    finetune(OmegaConf.merge(interrupted, {"resume": True}), data)

    a, b = _predictor_weights(tmp_path / "a" / "run"), _predictor_weights(tmp_path / "b" / "run")
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def load_weights_step(run_dir: Path) -> int:
    from vjepa_ac.checkpoint import load_train_state

    return load_train_state(run_dir / "checkpoint", restore_rng=False)["step"]


def test_bad_dimensions_and_encoder_mismatch_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"action dimension \(action\) is 6, "
                                         r"but config world_model.predictor.action_dim is 7"):
        finetune(_cfg(tmp_path), MovingSquare(16, action_dim=6))
    finetune(_cfg(tmp_path, train={"steps": 2}), MovingSquare(16))
    wider = _cfg(tmp_path, resume=True, encoder={"config": {"hidden_size": 64}})
    with pytest.raises(ValueError, match="features of size 48, but the configured encoder gives 64"):
        finetune(wider, MovingSquare(16))


def test_missing_inputs_are_named_in_the_order_given(tmp_path):
    """`python scripts/finetune.py data.root=/nonexistent` names data.root, not the default encoder path."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "finetune.py"), "data.root=/nonexistent",
                             "output_dir=run"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode != 0 and "data.root=/nonexistent does not exist" in result.stderr
    assert not (tmp_path / "outputs").exists() and (tmp_path / "run" / ".hydra").is_dir()  # Hydra's files in the run

    pretrained = {"source": "pretrain", "path": str(tmp_path / "missing")}
    with pytest.raises(FileNotFoundError, match="encoder.path=.*missing does not exist"):
        finetune(_cfg(tmp_path, data={"root": str(FIXTURE)}, encoder=pretrained))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty exists but holds no checkpoint"):
        finetune(_cfg(tmp_path, data={"root": str(FIXTURE)}, encoder={**pretrained, "path": str(tmp_path / "empty")}))


def test_finetune_from_the_shipped_world_model_takes_its_encoder(tmp_path):
    """encoder.path=checkpoints/vjepa_ac_tiny works as is: a fine-tuned checkpoint's encoder is found."""
    shipped = ROOT / "checkpoints" / "vjepa_ac_tiny"
    cfg = _cfg(tmp_path, encoder={"source": "pretrain", "path": str(shipped)},
               data={"root": str(FIXTURE), "num_steps": 3}, train={"steps": 1, "batch_size": 4},
               optim={"warmup_steps": 0})
    ckpt = finetune(cfg)
    ours, theirs = load_weights(ckpt), load_weights(shipped)
    for k in (k for k in theirs if k.startswith("encoder.")):
        assert torch.equal(ours[k], theirs[k]), k


def test_embedding_cache_key_tracks_encoder_weights_and_data(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.parquet").write_bytes(b"x")
    enc = torch.nn.Linear(3, 3)
    key = embedding_cache.cache_key(enc, {"pool": 2}, root)
    assert key == embedding_cache.cache_key(enc, {"pool": 2}, root)
    assert key != embedding_cache.cache_key(enc, {"pool": 1}, root)
    (root / "a.parquet").write_bytes(b"xy")
    key_data = embedding_cache.cache_key(enc, {"pool": 2}, root)
    assert key_data != key
    with torch.no_grad():
        enc.weight[0, 0] += 1
    assert embedding_cache.cache_key(enc, {"pool": 2}, root) != key_data


def _ddp_worker(rank: int, port: int, cfg_yaml: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    finetune(OmegaConf.create(cfg_yaml), MovingSquare(32))


def test_ddp_two_processes_match_one_process_on_the_same_global_batch(tmp_path, spawn, free_port):
    single = _cfg(tmp_path / "single", train={"steps": 4})
    finetune(single, MovingSquare(32))
    ddp = _cfg(tmp_path / "ddp", train={"steps": 4})
    spawn(_ddp_worker, (free_port, OmegaConf.to_yaml(ddp)), nprocs=2)
    a, b = _predictor_weights(tmp_path / "single" / "run"), _predictor_weights(tmp_path / "ddp" / "run")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4, msg=k)


def test_finetune_and_eval_dynamics_on_a_lerobot_dataset(tmp_path):
    """The real reader end to end: a dataset LeRobot wrote -> fine-tuning -> scripts/eval_dynamics.py."""
    cfg = _cfg(tmp_path, data={"root": str(FIXTURE), "num_steps": 3}, cache={"enabled": True},
               train={"steps": 3, "batch_size": 4})
    ckpt = finetune(cfg)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # train and val windows
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval_dynamics.py"), f"checkpoint={ckpt}", f"data.root={FIXTURE}",
         "eval.horizon=2", f"output_dir={out}", "threads=1"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 2 |" in result.stdout and "shuffled actions" in result.stdout
    assert (out / "horizons.png").stat().st_size > 0
    assert len(OmegaConf.create((out / "horizons.json").read_text())["mean_l1"]["predictor"]) == 2


def test_episode_encoding_cache_equals_window_by_window_encoding():
    """The RobotLogDataset fast path (each episode's frames encoded once) gives the generic path's windows."""
    from torch.utils.data import Subset

    from vjepa_ac.data.robot_logs import RobotLogDataset
    from vjepa_ac.world_model import build_modules

    dataset = RobotLogDataset(FIXTURE, num_steps=3, frame_stride=2, split="all", resolution=32)
    latents, _ = build_modules({"encoder": ENCODER, "pool": 2, "predictor": {"dim": 48, "depth": 1, "heads": 2}})
    fast = embedding_cache.encode_windows(dataset, latents)
    slow = embedding_cache.encode_windows(Subset(dataset, range(len(dataset))), latents)
    assert len(fast) == len(dataset)
    for a, b in zip((fast.z, fast.states, fast.actions), (slow.z, slow.states, slow.actions)):
        torch.testing.assert_close(a.float(), b.float(), atol=2e-3, rtol=0)
