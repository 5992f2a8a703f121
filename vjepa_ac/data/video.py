"""Clips from any folder of video files, for V-JEPA pretraining.

Each item is one clip of `frames_per_clip` frames taken every `frame_step` frames from one file,
random-resized-cropped (train) or centre-cropped (eval) to `resolution`, ImageNet-normalised:
`float[T, C, H, W]`. Clip positions are the non-overlapping windows of every usable file.

Bad files never crash a run and never pass silently: unreadable, empty or too-short files are
found when the dataset is built, listed once in a warning, and kept in `skipped` (path -> reason).
A file that only fails while decoding (truncated past its header) is reported once per process,
added to `skipped`, and its clips are replaced by the next good clip.

Decoding a clip (seek to a keyframe, decode forward) costs far more than cropping it, so training
reads clips from a `FrameCache` (`use_frame_cache`): every video decoded once to uint8 frames in one
memory-mapped file that all loader workers share.
"""

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.data.video_io import VideoError, iter_frames, probe_video, read_frames, worker_context

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")


def find_videos(root: str | Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> list[Path]:
    """All video files under `root` (recursive, sorted); hidden and partial files are ignored."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file()
                  and not p.name.startswith("."))


class VideoClipDataset(Dataset):
    def __init__(
        self,
        root: str | Path,
        frames_per_clip: int = 16,
        frame_step: int = 1,
        resolution: int = 64,
        random_resized_crop: bool = True,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        crop_ratio: tuple[float, float] = (0.75, 1.35),
        extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    ):
        self.root = Path(root)
        self.frames_per_clip, self.frame_step, self.resolution = frames_per_clip, frame_step, resolution
        self.random_resized_crop = random_resized_crop
        self.crop_scale, self.crop_ratio = tuple(crop_scale), tuple(crop_ratio)
        span = (frames_per_clip - 1) * frame_step + 1  # frames one clip covers
        self.skipped: dict[str, str] = {}
        self.videos: list[Path] = []
        self.num_frames: list[int] = []  # per video, from its header
        self.frame_cache: FrameCache | None = None
        self.clips: list[tuple[int, int]] = []  # (video index, first frame)
        for path in find_videos(self.root, tuple(extensions)):
            try:
                n = probe_video(path).num_frames
            except VideoError as e:
                self.skipped[str(path)] = str(e).removeprefix(f"{path}: ")
                continue
            if n < span:
                self.skipped[str(path)] = f"too short: {n} frames, a clip needs {span}"
                continue
            self.clips += [(len(self.videos), start) for start in range(0, n - span + 1, span)]
            self.videos.append(path)
            self.num_frames.append(n)
        if self.skipped:
            lines = "\n".join(f"  {p}: {why}" for p, why in self.skipped.items())
            log.warning("VideoClipDataset %s: skipped %d of %d files:\n%s", self.root, len(self.skipped),
                        len(self.skipped) + len(self.videos), lines)
        if not self.clips:
            raise ValueError(f"no usable video clips under {self.root} (frames_per_clip={frames_per_clip}, "
                             f"frame_step={frame_step}; {len(self.skipped)} files skipped: {self.skipped})")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """A clip `float[T, C, H, W]`; a clip that fails to decode is replaced by the next good one."""
        for offset in range(len(self.clips)):
            video_idx, start = self.clips[(idx + offset) % len(self.clips)]
            path = self.videos[video_idx]
            if str(path) in self.skipped:
                continue
            indices = list(range(start, start + self.frames_per_clip * self.frame_step, self.frame_step))
            try:
                frames = (self.frame_cache.frames(video_idx, indices) if self.frame_cache
                          else read_frames(path, indices))
            except VideoError as e:
                self.skipped[str(path)] = str(e).removeprefix(f"{path}: ")
                log.warning("VideoClipDataset: skipping %s: %s (%d files skipped so far)", path,
                            self.skipped[str(path)], len(self.skipped))
                continue
            return self.crop_and_normalize(frames)
        raise RuntimeError(f"every video under {self.root} failed to decode: {self.skipped}")

    def use_frame_cache(self, folder: str | Path, build: bool = True, num_workers: int = 0) -> None:
        """Read clips from the corpus decoded once into `folder` (built now if missing and `build`)."""
        self.frame_cache = FrameCache.load_or_build(folder, self.videos, self.num_frames, self.resolution, build,
                                                    num_workers)
        for path, why in self.frame_cache.skipped.items():
            self.skipped.setdefault(path, why)

    def crop_and_normalize(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 `[T, H, W, 3]` -> one crop for the whole clip, resized -> normalised `float[T, 3, r, r]`."""
        box = self._random_box(*frames.shape[1:3]) if self.random_resized_crop else None
        return normalize_frames(crop_resize(frames, self.resolution, box))

    def _random_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Random-resized-crop box (area fraction in crop_scale, log-uniform aspect ratio in crop_ratio)."""
        area = height * width
        log_ratio = (math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]))
        for _ in range(10):
            target = area * torch.empty(1).uniform_(*self.crop_scale).item()
            ratio = math.exp(torch.empty(1).uniform_(*log_ratio).item())
            w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,)))
                left = int(torch.randint(0, width - w + 1, (1,)))
                return top, left, h, w
        return _center_box(height, width)


def crop_resize(frames: np.ndarray, resolution: int, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` -> uint8 `[T, resolution, resolution, 3]`: the box (top, left, h, w; default
    the centred square) of every frame, resized with antialiasing."""
    top, left, h, w = box or _center_box(*frames.shape[1:3])
    box_frames = np.ascontiguousarray(frames[:, top:top + h, left:left + w])
    return _resize(torch.from_numpy(box_frames), resolution, resolution)


def resize_short_side(frames: np.ndarray, side: int) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` with the shorter side shrunk to `side` (aspect kept; never enlarged)."""
    height, width = frames.shape[1:3]
    scale = min(1.0, side / min(height, width))
    return _resize(torch.from_numpy(np.ascontiguousarray(frames)), round(height * scale), round(width * scale))


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` -> uint8 `[T, height, width, 3]`, bilinear with antialiasing."""
    if tuple(x.shape[1:3]) == (height, width):
        return x
    x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.permute(0, 2, 3, 1)


def _center_box(height: int, width: int) -> tuple[int, int, int, int]:
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


# ----------------------------------------------------------------------------- decoded-frame cache

FRAME_CACHE_VERSION = 1


class FrameCache:
    """Every video of a corpus decoded once to uint8 frames, the short side shrunk to the training
    resolution (a 64-px corpus is stored as is: the same crops as decoding on the fly).

    Files in the cache folder: `<key>.u8`, all frames back to back, memory-mapped by every process
    that reads it (the page cache holds one copy), and `<key>.json`, per video [byte offset, frames,
    height, width] plus the files that failed to decode. The key hashes the resolution and every
    video's path, size and modification time: a changed corpus or resolution is rebuilt under a new
    key. 300 64-px videos of 128 frames take 0.5 GB.
    """

    def __init__(self, data_path: Path, index: dict):
        self.data_path, self.videos, self.skipped = data_path, index["videos"], index["skipped"]
        self._data: np.ndarray | None = None  # mapped on first use, in each process

    def __getstate__(self) -> dict:  # loader workers map the file themselves
        return {**self.__dict__, "_data": None}

    def frames(self, video: int, indices: list[int]) -> np.ndarray:
        """uint8 `[len(indices), h, w, 3]` of one video."""
        if self._data is None:
            self._data = np.memmap(self.data_path, dtype=np.uint8, mode="r")
        offset, n, h, w = self.videos[video]
        return self._data[offset:offset + n * h * w * 3].reshape(n, h, w, 3)[indices]

    @staticmethod
    def key(videos: list[Path], resolution: int) -> str:
        files = [(str(Path(p).resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in videos]
        payload = {"version": FRAME_CACHE_VERSION, "resolution": resolution, "files": files}
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:24]

    @classmethod
    def load_or_build(cls, folder: str | Path, videos: list[Path], num_frames: list[int], resolution: int,
                      build: bool = True, num_workers: int = 0) -> "FrameCache":
        """Open the cache of these videos in `folder`, or (when `build`) decode them into it first.

        With `build=False` it must exist already (DDP ranks other than 0 wait for rank 0's build).
        """
        folder = Path(folder)
        key = cls.key(videos, resolution)
        data_path, index_path = folder / f"{key}.u8", folder / f"{key}.json"
        if index_path.is_file():
            log.info("frame cache hit: %s", data_path)
            return cls(data_path, json.loads(index_path.read_text()))
        if not build:
            raise FileNotFoundError(f"frame cache {index_path} missing (it should have been built by rank 0)")
        folder.mkdir(parents=True, exist_ok=True)
        index: dict = {"videos": [], "skipped": {}}
        offset = 0
        tmp = data_path.with_name(f"{data_path.name}.tmp{os.getpid()}")
        decoded = DataLoader(_DecodedVideos(videos, resolution), batch_size=None, num_workers=num_workers,
                             multiprocessing_context=worker_context(num_workers))
        with open(tmp, "wb") as f:
            for path, expected, frames in zip(videos, num_frames, tqdm(decoded, total=len(videos), unit="video",
                                                                      desc=f"decoding videos into {data_path}")):
                if isinstance(frames, str) or len(frames) < expected:
                    why = frames if isinstance(frames, str) else f"truncated: {len(frames)} of {expected} frames decode"
                    index["skipped"][str(path)] = why
                    log.warning("VideoClipDataset: skipping %s: %s", path, why)
                    index["videos"].append([offset, 0, 0, 0])
                    continue
                frames.numpy().tofile(f)
                index["videos"].append([offset, *frames.shape[:3]])
                offset += frames.numel()
        os.replace(tmp, data_path)
        tmp = index_path.with_name(f"{index_path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(index))
        os.replace(tmp, index_path)  # the index last: its presence means the cache is complete
        log.info("frame cache built: %d videos, %.2f GB in %s", len(videos), offset / 1e9, data_path)
        return cls(data_path, index)


class _DecodedVideos(Dataset):
    """Video i decoded and resized (uint8 `[T, h, w, 3]`), or why it failed: decoded in loader workers."""

    def __init__(self, videos: list[Path], resolution: int, chunk: int = 64):
        self.videos, self.resolution, self.chunk = videos, resolution, chunk

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> torch.Tensor | str:
        chunks, pending = [], []
        try:
            for frame in iter_frames(self.videos[i]):
                pending.append(frame)
                if len(pending) == self.chunk:
                    chunks.append(resize_short_side(np.stack(pending), self.resolution))
                    pending = []
        except VideoError as e:
            return str(e).removeprefix(f"{self.videos[i]}: ")
        if pending:
            chunks.append(resize_short_side(np.stack(pending), self.resolution))
        return torch.cat(chunks) if chunks else "video has no frames"
