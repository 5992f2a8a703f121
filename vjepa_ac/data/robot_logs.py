"""Windows of robot experience from a LeRobotDataset v3.0 folder (ours or anyone's), for
action-conditioned fine-tuning.

Item: `(frames float[T, C, H, W] ImageNet-normalised, states float[T, S], actions float[T-1, A])`,
T = `num_steps` frames taken every `frame_stride` control steps. Action k takes frame k to frame k+1:
with a stride above 1 it is the sum of the per-step delta actions in between (deltas compose by
addition, the action convention of vjepa_ac/state_action.py). Windows never cross episodes; the train/val split is by
episode, never by frame.

Everything is checked when the dataset is built (`lerobot_format`): files, features, dimensions,
NaN/inf, timestamps against fps, video frame counts (header) against parquet rows; errors name the
file, episode and feature. Each video file is decoded whole and its frames kept as uint8 (resized
to `resolution` when set) in a per-process cache of at most `cache_mb`, so items cost a slice and a
normalisation. With `preload` the cache is filled when the dataset is built (DataLoader workers
forked afterwards share it); what does not fit is decoded on first use and evicted least recently
used first.
"""

from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from vjepa_ac.data.lerobot_format import (ACTION_KEY, STATE_KEY, DatasetFormatError, LeRobotMeta, check_feature,
                                          check_timestamps, check_vectors, load_meta, video_segment)
from vjepa_ac.data.transforms import normalize_frames
from vjepa_ac.data.video import crop_resize
from vjepa_ac.data.video_io import probe_video, read_video
from vjepa_ac.state_action import ACTION_DIM, ENVIRONMENT_STATE_NAMES, STATE_DIM

SPLITS = ("train", "val", "all")


def split_episodes(meta: LeRobotMeta, split: str, val_fraction: float, seed: int) -> list[int]:
    """Episode indices of a split. A 'val' range in info.json's splits is used as given; otherwise a
    seeded random `val_fraction` of the episodes is held out (at least one when there are two or more)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    episodes = meta.episodes.index.to_numpy()
    if split == "all":
        return episodes.tolist()
    if "val" in meta.info.get("splits", {}):
        start, stop = (int(x) for x in meta.info["splits"]["val"].split(":"))
        val = set(range(start, stop))
    else:
        n_val = int(round(val_fraction * len(episodes)))
        n_val = max(n_val, 1) if val_fraction > 0 and len(episodes) > 1 else n_val
        val = set(np.random.default_rng(seed).permutation(episodes)[:n_val].tolist())
    return [int(e) for e in episodes if (e in val) == (split == "val")]


class RobotLogDataset(Dataset):
    def __init__(
        self,
        root: str | Path,
        camera_key: str = "observation.images.front",
        state_key: str = STATE_KEY,
        action_key: str = ACTION_KEY,
        num_steps: int = 8,
        frame_stride: int = 1,
        window_step: int = 1,
        split: str = "train",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        state_dim: int = STATE_DIM,
        action_dim: int = ACTION_DIM,
        environment_state_key: str | None = None,
        resolution: int | None = None,
        preload: bool = True,
        cache_mb: float = 4096,
    ):
        if num_steps < 2 or frame_stride < 1 or window_step < 1:
            raise ValueError(f"need num_steps >= 2, frame_stride >= 1, window_step >= 1; got {num_steps}, "
                             f"{frame_stride}, {window_step}")
        self.meta = meta = load_meta(root)
        self.camera_key, self.state_key, self.action_key = camera_key, state_key, action_key
        self.num_steps, self.frame_stride, self.resolution = num_steps, frame_stride, resolution
        check_feature(meta, camera_key, dtype="video")
        check_feature(meta, state_key, shape=[state_dim])
        check_feature(meta, action_key, shape=[action_dim])
        self.state_dim, self.action_dim = state_dim, action_dim
        # PRIVILEGED simulator state, read only for privileged baselines (None: not read)
        self.environment_state_key = environment_state_key
        if environment_state_key is not None:
            check_feature(meta, environment_state_key, shape=[len(ENVIRONMENT_STATE_NAMES)])
        self.episodes = split_episodes(meta, split, val_fraction, split_seed)

        self.states: dict[int, np.ndarray] = {}
        self.actions: dict[int, np.ndarray] = {}
        self.environment_states: dict[int, np.ndarray] = {}
        self._load_vectors()
        self.video_files: dict[Path, list[tuple[int, int, int]]] = {}  # file -> (episode, first frame, length)
        self.location: dict[int, tuple[Path, int, int]] = {}  # episode -> (file, first frame, length)
        self._check_videos()
        self.cache: OrderedDict[Path, np.ndarray] = OrderedDict()  # file -> uint8 [N, H, W, 3]
        self.cache_bytes = cache_mb * 2**20
        for path in self.video_files if preload else []:
            if sum(f.nbytes for f in self.cache.values()) >= self.cache_bytes:
                break
            self._file_frames(path)

        span = (num_steps - 1) * frame_stride
        self.windows = [(e, s) for e in self.episodes for s in range(0, len(self.states[e]) - span, window_step)]
        if not self.windows:
            raise ValueError(f"{meta.root}: no window of {num_steps} frames (stride {frame_stride}) fits in any "
                             f"of the {len(self.episodes)} episodes of split '{split}'")

    def _load_vectors(self) -> None:
        """Read states/actions of the split's episodes from their data files, checking each episode."""
        by_file = defaultdict(list)
        for e in self.episodes:
            by_file[self.meta.data_file(e)].append(e)
        vectors = [(self.state_key, self.state_dim, self.states), (self.action_key, self.action_dim, self.actions)]
        if self.environment_state_key is not None:
            vectors.append((self.environment_state_key, len(ENVIRONMENT_STATE_NAMES), self.environment_states))
        columns = ["episode_index", "frame_index", "timestamp", *(key for key, _, _ in vectors)]
        for path, episodes in by_file.items():
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (data of episodes {episodes[:10]})")
            table = pq.read_table(path)
            missing = [c for c in columns if c not in table.column_names]
            if missing:
                raise DatasetFormatError(f"{path}: episodes {episodes[:10]}: columns {missing} missing")
            episode_col = table["episode_index"].to_numpy()
            for e in episodes:
                rows = table.filter(episode_col == e)
                length = int(self.meta.episodes.loc[e, "length"])
                if rows.num_rows != length:
                    raise DatasetFormatError(f"{path}: episode {e}: {rows.num_rows} rows, episode metadata says {length}")
                order = np.argsort(rows["frame_index"].to_numpy(), kind="stable")
                check_timestamps(rows["timestamp"].to_numpy()[order], rows["frame_index"].to_numpy()[order],
                                 self.meta.fps, str(path), e)
                for key, dim, store in vectors:
                    values = _vectors(rows[key], f"{path}: episode {e}, feature '{key}'")[order]
                    check_vectors(values, dim, str(path), e, key)
                    store[e] = values

    def _check_videos(self) -> None:
        """Locate every episode's frames and check each video file the split uses exists and holds
        exactly the frames of the episodes that point into it."""
        by_file = defaultdict(list)
        for e in self.meta.episodes.index:  # all episodes: a file's frame count covers everything in it
            path, start = video_segment(self.meta, int(e), self.camera_key)
            by_file[path].append((int(e), start, int(self.meta.episodes.loc[e, "length"])))
        wanted = set(self.episodes)
        for path, segments in by_file.items():
            if not any(e in wanted for e, _, _ in segments):
                continue
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (feature '{self.camera_key}', episodes "
                                        f"{[e for e, _, _ in segments][:10]})")
            self._check_frame_count(path, segments, probe_video(path).num_frames, "header")
            self.video_files[path] = segments
            self.location.update({e: (path, start, length) for e, start, length in segments if e in wanted})

    def _check_frame_count(self, path: Path, segments: list[tuple[int, int, int]], count: int, source: str) -> None:
        expected = max(start + length for _, start, length in segments)
        if count != expected:
            e, start, length = next((s for s in segments if s[1] + s[2] > count), segments[-1])
            raise DatasetFormatError(
                f"{path}: episode {e}, feature '{self.camera_key}': video has {count} frames ({source}), the "
                f"parquet rows of its episodes need {expected} (this episode: frames {start}..{start + length - 1})")

    def _file_frames(self, path: Path) -> np.ndarray:
        """All frames of a video file (resized when `resolution` is set), decoded once per process."""
        if path in self.cache:
            self.cache.move_to_end(path)
            return self.cache[path]
        frames = read_video(path)
        self._check_frame_count(path, self.video_files[path], len(frames), "decoded")
        if self.resolution:
            frames = crop_resize(frames, self.resolution).numpy()
        self.cache[path] = frames
        while len(self.cache) > 1 and sum(f.nbytes for f in self.cache.values()) > self.cache_bytes:
            self.cache.popitem(last=False)
        return frames

    def episode_frames(self, episode: int) -> np.ndarray:
        """uint8 `[L, H, W, 3]` frames of one episode."""
        path, start, length = self.location[episode]
        return self._file_frames(path)[start:start + length]

    def __len__(self) -> int:
        return len(self.windows)

    def _span(self, idx: int) -> tuple[int, int, int]:
        """Episode, first and one-past-last control step of window `idx`."""
        episode, start = self.windows[idx]
        return episode, start, start + (self.num_steps - 1) * self.frame_stride + 1

    def window_states_actions(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The states [T, S] and (summed) actions [T - 1, A] of window `idx`, without decoding its frames."""
        episode, start, stop = self._span(idx)
        states = torch.from_numpy(self.states[episode][start:stop:self.frame_stride])
        per_step = self.actions[episode][start:stop - 1]
        actions = per_step.reshape(self.num_steps - 1, self.frame_stride, -1).sum(1)
        return states, torch.from_numpy(actions)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        episode, start, stop = self._span(idx)
        frames = normalize_frames(self.episode_frames(episode)[start:stop:self.frame_stride])
        return (frames, *self.window_states_actions(idx))


def _vectors(column, where: str) -> np.ndarray:
    """A parquet list column (fixed or variable size) -> float32 `[rows, dim]`."""
    try:
        return np.array(column.to_pylist(), dtype=np.float32).reshape(len(column), -1)
    except (ValueError, TypeError) as e:
        raise DatasetFormatError(f"{where}: rows of different lengths or non-numbers ({e})") from e
