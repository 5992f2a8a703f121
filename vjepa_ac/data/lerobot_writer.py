"""Writing LeRobotDataset v3.0 folders (layout in `lerobot_format`), resumably.

Episodes are buffered and written `episodes_per_file` at a time as one group of files: a data
parquet, one mp4 per camera (the episodes one after another), the group's episode-metadata
parquet, then tasks, stats and info.json, which is the commit point: a group counts once info.json
counts it. Every file is written to a temp name and renamed, so a crash leaves whole files, and
reopening the folder continues after the last group info.json counts (`num_episodes` says where).
"""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vjepa_ac.data.lerobot_format import (ACTION_KEY, CODEBASE_VERSION, DATA_PATH, DEFAULT_CHUNK_SIZE,
                                          ENVIRONMENT_STATE_KEY, EPISODES_PATH, INDEX_FEATURES, INFO_PATH, STATE_KEY, STATS_PATH, TASKS_PATH,
                                          VIDEO_PATH, DatasetFormatError, chunk_and_file, check_vectors, load_meta)
from vjepa_ac.data.video_io import PIX_FMT, VIDEO_CODEC_NAME, write_video
from vjepa_ac.state_action import ACTION_NAMES, ENVIRONMENT_STATE_NAMES, STATE_NAMES


def video_feature(height: int, width: int, fps: int) -> dict:
    """LeRobot feature spec of a camera stored as our mp4s."""
    return {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": VIDEO_CODEC_NAME,
                     "video.pix_fmt": PIX_FMT, "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": 3, "has_audio": False}}


def vector_feature(names: list[str]) -> dict:
    return {"dtype": "float32", "shape": [len(names)], "names": list(names)}


def robot_log_features(camera_keys: list[str], resolution: int, fps: int) -> dict:
    """The features of our robot logs: square cameras, the 7-D state and action, and the PRIVILEGED
    environment state that only privileged baselines read (vjepa_ac.state_action)."""
    cameras = {key: video_feature(resolution, resolution, fps) for key in camera_keys}
    return {**cameras, STATE_KEY: vector_feature(STATE_NAMES), ACTION_KEY: vector_feature(ACTION_NAMES),
            ENVIRONMENT_STATE_KEY: vector_feature(ENVIRONMENT_STATE_NAMES)}


class LeRobotWriter:
    """Append episodes to a v3.0 dataset at `root` (created, or continued if it exists).

    `features` maps keys to LeRobot feature specs (see `video_feature`, `vector_feature`); the index
    and timestamp columns are added here.
    """

    def __init__(self, root: str | Path, fps: int, features: dict, robot_type: str | None = None,
                 episodes_per_file: int = 50, chunks_size: int = DEFAULT_CHUNK_SIZE):
        self.root = Path(root)
        self.fps, self.episodes_per_file, self.chunks_size = fps, episodes_per_file, chunks_size
        self.video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
        self.vector_keys = [k for k, f in features.items() if f["dtype"] != "video"]
        self.buffer: list[dict] = []
        if (self.root / INFO_PATH).exists():
            self._resume(features)
        else:
            self.info = {
                "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": 0,
                "total_frames": 0, "total_tasks": 0, "chunks_size": chunks_size, "fps": fps, "splits": {},
                "data_path": DATA_PATH, "video_path": VIDEO_PATH if self.video_keys else None,
                "features": {**features, **INDEX_FEATURES},
            }
            self.tasks: list[str] = []
            self.stats: dict = {}
            self.num_groups = 0

    def _resume(self, features: dict) -> None:
        meta = load_meta(self.root)
        expected = {**features, **INDEX_FEATURES}
        if meta.fps != self.fps or meta.info["features"] != json.loads(json.dumps(expected)):
            raise DatasetFormatError(f"{self.root / INFO_PATH}: existing dataset has other fps/features than this "
                                     f"writer (fps {meta.fps:g} vs {self.fps}); use a new folder")
        self.info, self.tasks = meta.info, meta.tasks
        uncounted = meta.episodes[meta.episodes.index >= self.info["total_episodes"]]
        self._roll_back(uncounted)
        last = meta.episodes.loc[self.info["total_episodes"] - 1]
        self.num_groups = int(last["meta/episodes/chunk_index"]) * self.chunks_size + int(last["meta/episodes/file_index"]) + 1
        stats_path = self.root / STATS_PATH
        # stats.json is written after a group's episode file: it can count an uncounted group only
        # when such a file was left behind, and only then is it recomputed from the data files.
        self.stats = (json.loads(stats_path.read_text()) if uncounted.empty and stats_path.exists()
                      else self._counted_stats())

    def _roll_back(self, uncounted: pd.DataFrame) -> None:
        """Remove the episode-metadata files of a group that info.json does not count.

        A writer killed after a group's episode file but before info.json leaves that group behind
        (and stats.json maybe counting it): it is written again, and the statistics are recomputed
        from the counted groups' data files, or the group would be listed, and counted, twice.
        """
        for chunk, file in {(int(c), int(f)) for c, f in uncounted[["meta/episodes/chunk_index",
                                                                    "meta/episodes/file_index"]].to_numpy()}:
            (self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)).unlink()

    def _counted_stats(self) -> dict:
        """The statistics of every vector feature over the data files of the groups info.json counts."""
        stats: dict = {}
        for group in range(self.num_groups):
            table = pq.read_table(self.root / DATA_PATH.format(**chunk_and_file(group, self.chunks_size)),
                                  columns=self.vector_keys)
            for key in self.vector_keys:
                stats[key] = _merge_stats(stats.get(key), np.array(table[key].to_pylist(), np.float32))
        return stats

    @property
    def num_episodes(self) -> int:
        """Episodes written or buffered so far; the next episode gets this index."""
        return self.info["total_episodes"] + len(self.buffer)

    def add_episode(self, frames: dict[str, np.ndarray], vectors: dict[str, np.ndarray], task: str,
                    metadata: dict | None = None) -> None:
        """Buffer one episode: `frames[video_key]` uint8 `[L, H, W, 3]`, `vectors[key]` float `[L, D]`,
        one task string, and scalar per-episode metadata (e.g. success) stored in the episode table."""
        episode = self.num_episodes
        length = len(next(iter(vectors.values())))
        where = f"episode being written to {self.root}"
        for key in self.vector_keys:
            if key not in vectors:
                raise DatasetFormatError(f"{where}: episode {episode}, feature '{key}' not given")
            values = np.asarray(vectors[key], dtype=np.float32)
            check_vectors(values, self.info["features"][key]["shape"][0], where, episode, key)
            if len(values) != length:
                raise DatasetFormatError(f"{where}: episode {episode}, feature '{key}' has {len(values)} rows, "
                                         f"expected {length}")
        for key in self.video_keys:
            shape = [length, *self.info["features"][key]["shape"]]
            if key not in frames or list(frames[key].shape) != shape or frames[key].dtype != np.uint8:
                got = (frames[key].dtype, list(frames[key].shape)) if key in frames else "nothing"
                raise DatasetFormatError(f"{where}: episode {episode}, feature '{key}': expected uint8 {shape}, got {got}")
        self.buffer.append({"frames": frames, "vectors": vectors, "task": task, "length": length,
                            "metadata": metadata or {}})
        if len(self.buffer) >= self.episodes_per_file:
            self.flush()

    def flush(self) -> None:
        """Write the buffered episodes as the next group of files."""
        if not self.buffer:
            return
        loc = chunk_and_file(self.num_groups, self.chunks_size)
        first_episode, first_index = self.info["total_episodes"], self.info["total_frames"]
        for ep in self.buffer:
            if ep["task"] not in self.tasks:
                self.tasks.append(ep["task"])

        rows, episode_rows, index, video_start = [], [], first_index, 0.0
        for i, ep in enumerate(self.buffer):
            length, episode = ep["length"], first_episode + i
            rows.append({
                **{k: np.asarray(ep["vectors"][k], dtype=np.float32) for k in self.vector_keys},
                "timestamp": (np.arange(length) / self.fps).astype(np.float32),
                "frame_index": np.arange(length), "episode_index": np.full(length, episode),
                "index": np.arange(index, index + length), "task_index": np.full(length, self.tasks.index(ep["task"])),
            })
            duration = length / self.fps
            episode_rows.append({
                "episode_index": episode, "tasks": [ep["task"]], "length": length,
                "data/chunk_index": loc["chunk_index"], "data/file_index": loc["file_index"],
                "dataset_from_index": index, "dataset_to_index": index + length,
                **{f"videos/{k}/{c}": loc[c] for k in self.video_keys for c in ("chunk_index", "file_index")},
                **{f"videos/{k}/from_timestamp": video_start for k in self.video_keys},
                **{f"videos/{k}/to_timestamp": video_start + duration for k in self.video_keys},
                "meta/episodes/chunk_index": loc["chunk_index"], "meta/episodes/file_index": loc["file_index"],
                **ep["metadata"],
            })
            index += length
            video_start += duration

        for key in self.video_keys:
            write_video(self.root / VIDEO_PATH.format(video_key=key, **loc),
                        np.concatenate([ep["frames"][key] for ep in self.buffer]), self.fps)
        _write_parquet(self._frames_table(rows), self.root / DATA_PATH.format(**loc))
        _write_parquet(pa.Table.from_pylist(episode_rows), self.root / EPISODES_PATH.format(**loc))

        for key in self.vector_keys:
            self.stats[key] = _merge_stats(self.stats.get(key), np.concatenate([r[key] for r in rows]))
        self.info["total_episodes"] += len(self.buffer)
        self.info["total_frames"] = index
        self.info["total_tasks"] = len(self.tasks)
        self.info["splits"] = {"train": f"0:{self.info['total_episodes']}"}
        tasks = pd.DataFrame({"task_index": range(len(self.tasks))}, index=self.tasks)
        _atomic(self.root / TASKS_PATH, lambda p: tasks.to_parquet(p))
        _atomic(self.root / STATS_PATH, lambda p: Path(p).write_text(json.dumps(self.stats, indent=2)))
        _atomic(self.root / INFO_PATH, lambda p: Path(p).write_text(json.dumps(self.info, indent=4)))
        self.num_groups += 1
        self.buffer = []

    def _frames_table(self, rows: list[dict]) -> pa.Table:
        columns = {}
        for key in self.vector_keys:
            values = np.concatenate([r[key] for r in rows])
            columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
        for key, spec in INDEX_FEATURES.items():
            columns[key] = pa.array(np.concatenate([r[key] for r in rows]).astype(spec["dtype"]))
        return pa.table(columns)

    def close(self) -> None:
        self.flush()


def _merge_stats(old: dict | None, values: np.ndarray) -> dict:
    """Per-dimension min/max/mean/std/count, merged with earlier groups' (parallel-variance formula)."""
    n = len(values)
    mean, var = values.mean(0, dtype=np.float64), values.var(0, dtype=np.float64)
    new = {"min": values.min(0), "max": values.max(0), "mean": mean, "std": np.sqrt(var), "count": [n]}
    if old is not None:
        m = old["count"][0]
        om, ov = np.asarray(old["mean"]), np.asarray(old["std"]) ** 2
        total = m + n
        delta = mean - om
        new = {"min": np.minimum(old["min"], new["min"]), "max": np.maximum(old["max"], new["max"]),
               "mean": om + delta * n / total,
               "std": np.sqrt((m * ov + n * var + delta**2 * m * n / total) / total), "count": [total]}
    return {k: np.asarray(v).tolist() for k, v in new.items()}


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    write(tmp)
    os.replace(tmp, path)


def _write_parquet(table: pa.Table, path: Path) -> None:
    _atomic(path, lambda p: pq.write_table(table, p, compression="snappy"))
