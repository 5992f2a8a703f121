"""On-disk cache of frozen-encoder latents for robot-log windows.

The encoder is frozen during fine-tuning, so every window's latents are the same each epoch:
encoding them once and training from the cache makes CPU fine-tuning many times faster.

A cache file is named by a hash of everything its contents depend on: the encoder's weights (hashed
tensor by tensor), the latent pooling, the dataset's files (relative path, size, modification time)
and the dataset's settings (keys, window length, split). Change any of them and the key changes, so a
stale cache is never read; it is rebuilt under the new name.

File: `<cache_dir>/<key>.safetensors` with `z [W, T, N, D]` (float16), `states [W, T, S]`,
`actions [W, T-1, A]`, written atomically (temp file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vjepa_ac.data.robot_logs import RobotLogDataset
from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.data.video_io import worker_context

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def weights_hash(module: nn.Module) -> str:
    """SHA-256 over a module's parameter/buffer names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        t = value.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def files_fingerprint(root: str | Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file under `root`, sorted."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*") if p.is_file())


def cache_key(encoder: nn.Module, settings: dict[str, Any], data_root: str | Path | None) -> str:
    """Hash of the encoder weights, the latent/dataset settings and the dataset files."""
    payload = {
        "version": CACHE_VERSION,
        "encoder": weights_hash(encoder),
        "settings": settings,
        "files": files_fingerprint(data_root) if data_root is not None else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


class LatentWindows(Dataset):
    """Cached windows: `(z [T, N, D] float32, states [T, S], actions [T-1, A])` by index."""

    def __init__(self, z: torch.Tensor, states: torch.Tensor, actions: torch.Tensor):
        self.z, self.states, self.actions = z, states, actions

    def __len__(self) -> int:
        return self.z.shape[0]

    def __getitem__(self, i: int):
        return self.z[i].float(), self.states[i], self.actions[i]


@torch.no_grad()
def encode_windows(dataset: Dataset, latents: nn.Module, batch_size: int = 16, num_workers: int = 0,
                   device: torch.device | str = "cpu", desc: str = "encoding windows") -> LatentWindows:
    """Run the frozen encoder over every window of a raw `(frames, states, actions)` dataset."""
    if isinstance(dataset, RobotLogDataset):
        return encode_episodes(dataset, latents, batch_size * 4, device, desc)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        multiprocessing_context=worker_context(num_workers))
    zs, ss, acts = [], [], []
    for frames, states, actions in tqdm(loader, desc=desc, unit="batch"):
        zs.append(latents(frames.to(device)).to("cpu", torch.float16))
        ss.append(states.float())
        acts.append(actions.float())
    if not zs:
        raise ValueError("the dataset has no windows to encode")
    return LatentWindows(torch.cat(zs), torch.cat(ss), torch.cat(acts))


@torch.no_grad()
def encode_episodes(dataset: RobotLogDataset, latents: nn.Module, frames_per_batch: int,
                    device: torch.device | str, desc: str) -> LatentWindows:
    """Windows overlap, so encode each episode's frames once and gather every window from them
    (`num_steps` times fewer encoder passes than encoding window by window)."""
    episodes = sorted({e for e, _ in dataset.windows})
    per_episode = dict(zip(episodes, encode_episode_frames(dataset, episodes, latents, frames_per_batch, device, desc)))
    offsets = torch.arange(dataset.num_steps) * dataset.frame_stride
    z = torch.stack([per_episode[e][start + offsets] for e, start in dataset.windows])
    # the reader's own slicing, without decoding every window's frames again (that held them all in memory)
    states, actions = zip(*(dataset.window_states_actions(i) for i in range(len(dataset))))
    return LatentWindows(z, torch.stack(states).float(), torch.stack(actions).float())


def load_or_build(dataset: Dataset, latents: nn.Module, cache_dir: str | Path, key: str,
                  build: bool = True, **encode_kwargs) -> LatentWindows:
    """Read `<cache_dir>/<key>.safetensors`, or (when `build`) encode the dataset and write it.

    With `build=False` the file must already exist (DDP ranks other than 0 wait for rank 0's build).
    """
    path = Path(cache_dir) / f"{key}.safetensors"
    if path.is_file():
        t = load_file(str(path))
        log.info("embedding cache hit: %s (%d windows)", path, t["z"].shape[0])
        return LatentWindows(t["z"], t["states"], t["actions"])
    if not build:
        raise FileNotFoundError(f"embedding cache {path} missing (it should have been built by rank 0)")
    log.info("embedding cache miss: encoding %d windows into %s", len(dataset), path)
    windows = encode_windows(dataset, latents, **encode_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file({"z": windows.z.contiguous(), "states": windows.states.contiguous(),
               "actions": windows.actions.contiguous()}, str(tmp), metadata={"key": key})
    os.replace(tmp, path)
    return windows


class EpisodeLatents(NamedTuple):
    """One encoded episode: every frame's latents `z [T, N, D]` (float16), `states [T, S]`, `actions [T, A]`."""
    z: torch.Tensor
    states: torch.Tensor
    actions: torch.Tensor


def episode_latents(dataset: RobotLogDataset, episodes: list[int], latents: nn.Module, cache_dir: str | Path,
                    batch_size: int, rank_is_main: bool, device: torch.device | str) -> list[EpisodeLatents]:
    """`episodes` of `dataset`, encoded frame by frame, from the cache in `cache_dir` (built on rank 0
    if missing; the key covers the encoder, the pooling, the data files and the episodes); their
    states and actions are the dataset's own."""
    from vjepa_ac.training import main_first

    settings = {"kind": "episodes", "pool": latents.pool, "crop_size": latents.crop_size, "episodes": episodes,
                "keys": [dataset.camera_key, dataset.state_key, dataset.action_key]}
    key = cache_key(latents.encoder, settings, dataset.meta.root)
    path = Path(cache_dir) / f"{key}.safetensors"

    def build(build: bool) -> dict[str, torch.Tensor]:
        if path.is_file():
            log.info("episode cache hit: %s", path)
            return load_file(str(path))
        if not build:
            raise FileNotFoundError(f"episode cache {path} missing (it should have been built by rank 0)")
        encoded = encode_episode_frames(dataset, episodes, latents, batch_size, device)
        tensors = {"z": torch.cat(encoded).contiguous(), "lengths": torch.tensor([len(z) for z in encoded])}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"key": key})
        os.replace(tmp, path)
        return tensors

    t = main_first(build, rank_is_main)
    return [EpisodeLatents(z, torch.as_tensor(dataset.states[e]).float(), torch.as_tensor(dataset.actions[e]).float())
            for e, z in zip(episodes, t["z"].split(t["lengths"].tolist()))]


@torch.no_grad()
def encode_episode_frames(dataset: RobotLogDataset, episodes: list[int], latents: nn.Module, frames_per_batch: int,
                          device: torch.device | str, desc: str = "encoding episodes") -> list[torch.Tensor]:
    """Each episode's frames through the frozen encoder: a list of float16 `[T, N, D]` on the CPU."""
    out = []
    for e in tqdm(episodes, desc=desc, unit="episode"):
        frames = dataset.episode_frames(e)
        out.append(torch.cat([latents(normalize_frames(frames[i:i + frames_per_batch]).to(device))
                              .to("cpu", torch.float16) for i in range(0, len(frames), frames_per_batch)]))
    return out
