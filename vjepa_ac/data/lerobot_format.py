"""The LeRobotDataset v3.0 layout, its metadata, and the checks shared by our writer and reader.

A v3.0 dataset on disk:

    meta/info.json                                  codebase_version, fps, features, splits, path templates
    meta/tasks.parquet                              task string (the index) -> task_index
    meta/episodes/chunk-000/file-000.parquet        one row per episode: length, where its rows and video live
    data/chunk-000/file-000.parquet                 one row per frame: features + timestamp/index columns
    videos/<camera key>/chunk-000/file-000.mp4      several episodes one after another in each file

Episode e's frames in a video file start at `videos/<key>/from_timestamp` seconds, frame i of the
episode is at from_timestamp + i / fps (that is how LeRobot itself finds them).

Every check raises `DatasetFormatError` with the file, episode and feature it is about.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
DEFAULT_CHUNK_SIZE = 1000  # files per chunk folder, as LeRobot
STATE_KEY = "observation.state"  # the robot-log features (LeRobot's names); cameras are observation.images.<name>
ACTION_KEY = "action"
ENVIRONMENT_STATE_KEY = "observation.environment_state"  # LeRobot's name for privileged simulator state

# Columns every frame row has, with their LeRobot feature specs.
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
TIMESTAMP_TOLERANCE_S = 1e-3


class DatasetFormatError(ValueError):
    """A dataset that does not follow the layout or fails a content check."""


@dataclass
class LeRobotMeta:
    root: Path
    info: dict
    tasks: list[str]  # task_index -> task string
    episodes: pd.DataFrame  # one row per episode, indexed by episode_index, without stats/ columns

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def features(self) -> dict:
        return self.info["features"]

    def data_file(self, episode: int) -> Path:
        row = self.episodes.loc[episode]
        return self.root / self.info["data_path"].format(
            chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]))

    def video_file(self, episode: int, video_key: str) -> Path:
        row = self.episodes.loc[episode]
        return self.root / self.info["video_path"].format(
            video_key=video_key, chunk_index=int(row[f"videos/{video_key}/chunk_index"]),
            file_index=int(row[f"videos/{video_key}/file_index"]))


def chunk_and_file(group: int, chunks_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, int]:
    """The n-th file of a dataset lives in chunk n // chunks_size."""
    return {"chunk_index": group // chunks_size, "file_index": group % chunks_size}


def load_meta(root: str | Path) -> LeRobotMeta:
    """Read info.json, tasks and episode metadata, checking the files exist and the version is v3.0."""
    root = Path(root)
    info_path = root / INFO_PATH
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path}: missing; not a LeRobot dataset folder ({root})")
    try:
        info = json.loads(info_path.read_text())
    except ValueError as e:  # json's own message does not name the file
        raise DatasetFormatError(f"{info_path}: not valid JSON ({e})") from e
    for key in ("codebase_version", "fps", "features", "data_path"):
        if key not in info:
            raise DatasetFormatError(f"{info_path}: missing key '{key}'")
    if info["codebase_version"] != CODEBASE_VERSION:
        raise DatasetFormatError(f"{info_path}: codebase_version {info['codebase_version']!r}, only {CODEBASE_VERSION} "
                                 "is read (LeRobot's convert_dataset_v21_to_v30 upgrades older datasets)")
    tasks_path = root / TASKS_PATH
    if not tasks_path.is_file():
        raise FileNotFoundError(f"{tasks_path}: missing")
    tasks_df = pd.read_parquet(tasks_path)
    tasks = [""] * len(tasks_df)
    for task, task_index in zip(tasks_df.index, tasks_df["task_index"]):
        tasks[int(task_index)] = str(task)
    episode_files = sorted((root / EPISODES_DIR).glob("*/*.parquet"))
    if not episode_files:
        raise FileNotFoundError(f"{root / EPISODES_DIR}: no episode metadata files (chunk-*/file-*.parquet)")
    episodes = pd.concat([_read_episode_file(p) for p in episode_files], ignore_index=True)
    episodes = episodes.set_index("episode_index", drop=False).sort_index()
    if episodes.index.has_duplicates:
        dup = episodes.index[episodes.index.duplicated()].tolist()
        raise DatasetFormatError(f"{root / EPISODES_DIR}: episodes listed twice: {dup[:10]}")
    return LeRobotMeta(root, info, tasks, episodes)


def _read_episode_file(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except pa.ArrowInvalid as e:  # a damaged file; pyarrow's message does not name it
        raise DatasetFormatError(f"{path}: not a readable parquet file ({e})") from e
    columns = [c for c in schema.names if not c.startswith("stats/")]
    df = pq.read_table(path, columns=columns).to_pandas()
    missing = {"episode_index", "length", "data/chunk_index", "data/file_index"} - set(df.columns)
    if missing:
        raise DatasetFormatError(f"{path}: episode metadata lacks columns {sorted(missing)}")
    return df


def check_feature(meta: LeRobotMeta, key: str, dtype: str | None = None, shape: list[int] | None = None) -> None:
    """The feature exists in info.json, with the given dtype and shape where those are given."""
    path = meta.root / INFO_PATH
    if key not in meta.features:
        raise DatasetFormatError(f"{path}: feature '{key}' missing; the dataset has {sorted(meta.features)}")
    spec = meta.features[key]
    if dtype is not None and spec.get("dtype") != dtype:
        raise DatasetFormatError(f"{path}: feature '{key}' has dtype {spec.get('dtype')!r}, expected {dtype!r}")
    if shape is not None and list(spec.get("shape", [])) != list(shape):
        raise DatasetFormatError(f"{path}: feature '{key}' has shape {list(spec.get('shape', []))}, expected {list(shape)}")


def check_vectors(values: np.ndarray, dim: int, where: str, episode: int, key: str) -> None:
    """`values` is finite float `[L, dim]`; `where` names the file."""
    if values.ndim != 2 or values.shape[1] != dim:
        raise DatasetFormatError(f"{where}: episode {episode}, feature '{key}': expected shape [L, {dim}], "
                                 f"got {list(values.shape)}")
    bad = ~np.isfinite(values)
    if bad.any():
        frame = int(np.argwhere(bad)[0, 0])
        raise DatasetFormatError(f"{where}: episode {episode}, feature '{key}': NaN/inf at frame {frame}")


def check_timestamps(timestamps: np.ndarray, frame_index: np.ndarray, fps: float, where: str, episode: int) -> None:
    """Frame rows are numbered 0..L-1 and frame i is at i / fps seconds."""
    if not np.array_equal(frame_index, np.arange(len(frame_index))):
        raise DatasetFormatError(f"{where}: episode {episode}, feature 'frame_index': not 0..{len(frame_index) - 1}")
    err = np.abs(timestamps - frame_index / fps)
    if (err > TIMESTAMP_TOLERANCE_S).any():
        i = int(np.argmax(err > TIMESTAMP_TOLERANCE_S))  # the first frame off
        raise DatasetFormatError(f"{where}: episode {episode}, feature 'timestamp': frame {i} at {timestamps[i]:.4f} s, "
                                 f"but fps {fps:g} puts it at {i / fps:.4f} s")


def video_segment(meta: LeRobotMeta, episode: int, video_key: str) -> tuple[Path, int]:
    """(video file, index of the episode's first frame in it). The segment's duration must match the
    episode's row count within a frame; the decoded frame count is checked where files are decoded."""
    row = meta.episodes.loc[episode]
    cols = [f"videos/{video_key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    missing = [c for c in cols if c not in row.index]
    if missing or "video_path" not in meta.info or meta.info["video_path"] is None:
        raise DatasetFormatError(f"{meta.root / EPISODES_DIR}: episode {episode}, feature '{video_key}': "
                                 f"no video location ({missing or 'info.json video_path'} missing)")
    path = meta.video_file(episode, video_key)
    start = int(round(row[cols[2]] * meta.fps))
    frames = int(round((row[cols[3]] - row[cols[2]]) * meta.fps))
    if abs(frames - int(row["length"])) > 1:
        raise DatasetFormatError(f"{path}: episode {episode}, feature '{video_key}': video segment "
                                 f"{row[cols[2]]:.3f}-{row[cols[3]]:.3f} s holds {frames} frames at {meta.fps:g} fps, "
                                 f"the parquet has {int(row['length'])} rows")
    return path, start
