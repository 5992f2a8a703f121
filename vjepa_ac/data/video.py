"""Clips from any folder of video files, for V-JEPA pretraining.

Each item is one clip of `frames_per_clip` frames taken every `frame_step` frames from one file,
random-resized-cropped (train) or centre-cropped (eval) to `resolution`, ImageNet-normalised:
`float[T, C, H, W]`. Clip positions are the non-overlapping windows of every usable file.

Bad files never crash a run and never pass silently: unreadable, empty or too-short files are
found when the dataset is built, listed once in a warning, and kept in `skipped` (path -> reason).
A file that only fails while decoding (truncated past its header) is reported once per process,
added to `skipped`, and its clips are replaced by the next good clip.
"""

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.data.video_io import VideoError, probe_video, read_frames

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
                frames = read_frames(path, indices)
            except VideoError as e:
                self.skipped[str(path)] = str(e).removeprefix(f"{path}: ")
                log.warning("VideoClipDataset: skipping %s: %s (%d files skipped so far)", path,
                            self.skipped[str(path)], len(self.skipped))
                continue
            return self.crop_and_normalize(frames)
        raise RuntimeError(f"every video under {self.root} failed to decode: {self.skipped}")

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
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top:top + h, left:left + w]))
    if (h, w) == (resolution, resolution):
        return x
    x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.permute(0, 2, 3, 1)


def _center_box(height: int, width: int) -> tuple[int, int, int, int]:
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side
