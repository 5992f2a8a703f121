"""LeRobot v3.0 writer and RobotLogDataset: round trip, alignment, splits, resume, bad inputs, LeRobot interop.

Synthetic episodes make alignment checkable: the frame at global row k is a flat colour with
red = 5 * k, and its state is [k, frame index, episode, 0, 0, 0, 0].
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from vjepa_ac.data import DatasetFormatError, LeRobotWriter, RobotLogDataset
from vjepa_ac.data.lerobot_writer import vector_feature, video_feature
from vjepa_ac.data.transforms import denormalize_frames
from vjepa_ac.data.video_io import worker_context, write_video

CAMERA = "observation.images.front"
FIXTURE = Path(__file__).parent / "fixtures" / "lerobot_v30_tiny"
LENGTHS = [6, 9, 7, 8, 5]  # 35 rows: red = 5 * row stays below 256


def features(fps: int = 5) -> dict:
    return {CAMERA: video_feature(16, 16, fps), "observation.state": vector_feature(list("xyzabcg")),
            "action": vector_feature(list("XYZABCG"))}


def episode(first_row: int, episode_index: int, length: int) -> tuple[dict, dict]:
    rows = first_row + np.arange(length)
    frames = np.empty((length, 16, 16, 3), np.uint8)
    frames[..., 0] = (5 * rows)[:, None, None]
    frames[..., 1:] = 100
    states = np.zeros((length, 7), np.float32)
    states[:, 0], states[:, 1], states[:, 2] = rows, np.arange(length), episode_index
    actions = np.concatenate([np.diff(states, axis=0), np.zeros((1, 7), np.float32)])
    return {CAMERA: frames}, {"observation.state": states, "action": actions}


def write_dataset(root: Path, lengths=LENGTHS, episodes_per_file: int = 2) -> Path:
    writer = LeRobotWriter(root, 5, features(), robot_type="test", episodes_per_file=episodes_per_file)
    row = 0
    for e, length in enumerate(lengths):
        frames, vectors = episode(row, e, length)
        writer.add_episode(frames, vectors, task=f"task {e % 2}", metadata={"success": e % 2 == 0})
        row += length
    writer.close()
    return root


@pytest.fixture
def dataset_root(tmp_path) -> Path:
    return write_dataset(tmp_path / "ds")


def test_layout_and_metadata(dataset_root):
    info = json.loads((dataset_root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"], info["fps"]) == (5, 35, 2, 5)
    assert set(info["features"]) == {CAMERA, "observation.state", "action", "timestamp", "frame_index",
                                     "episode_index", "index", "task_index"}
    for f in ["data/chunk-000/file-002.parquet", f"videos/{CAMERA}/chunk-000/file-002.mp4",
              "meta/episodes/chunk-000/file-002.parquet", "meta/tasks.parquet", "meta/stats.json"]:
        assert (dataset_root / f).is_file(), f
    episodes = pd.concat(pd.read_parquet(p) for p in sorted((dataset_root / "meta/episodes").glob("*/*.parquet")))
    assert episodes["length"].tolist() == LENGTHS
    assert episodes["success"].tolist() == [True, False, True, False, True]
    assert episodes[f"videos/{CAMERA}/from_timestamp"].tolist()[:2] == [0.0, 6 / 5]
    stats = json.loads((dataset_root / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [35]
    assert stats["observation.state"]["max"][0] == 34
    assert stats["observation.state"]["mean"][0] == pytest.approx(17.0)


def test_round_trip_windows_are_aligned(dataset_root):
    ds = RobotLogDataset(dataset_root, num_steps=3, split="all")
    assert len(ds) == sum(n - 2 for n in LENGTHS)
    for idx in range(len(ds)):
        frames, states, actions = ds[idx]
        assert frames.shape == (3, 3, 16, 16) and frames.dtype == torch.float32
        assert states.shape == (3, 7) and actions.shape == (2, 7)
        assert states.dtype == actions.dtype == torch.float32
        red = denormalize_frames(frames)[..., 0].reshape(3, -1).mean(1)
        assert np.abs(red - 5 * states[:, 0].numpy()).max() <= 3  # frame k shows row k
        assert torch.equal(states[:, 2], states[0, 2].expand(3))  # one episode per window
        assert torch.equal(states[1:, 1] - states[:-1, 1], torch.ones(2))
        assert torch.allclose(actions, states[1:] - states[:-1])  # action t takes state t to t+1


def test_frame_stride_sums_actions(dataset_root):
    ds = RobotLogDataset(dataset_root, num_steps=3, frame_stride=2, split="all", window_step=2)
    assert len(ds) == sum(len(range(0, n - 4, 2)) for n in LENGTHS)
    frames, states, actions = ds[1]
    assert torch.equal(states[1:, 1] - states[:-1, 1], torch.full((2,), 2.0))
    assert torch.allclose(actions, states[1:] - states[:-1])


def test_lazy_decoding_with_a_small_cache_gives_the_same_items(dataset_root):
    eager = RobotLogDataset(dataset_root, num_steps=3, split="all")
    lazy = RobotLogDataset(dataset_root, num_steps=3, split="all", preload=False, cache_mb=0)
    assert not lazy.cache and len(eager.cache) == 3
    for idx in [0, 20, 5, 24]:
        assert all(torch.equal(a, b) for a, b in zip(eager[idx], lazy[idx]))
        assert len(lazy.cache) == 1  # evicted down to the file in use


def test_resolution_resizes_frames(dataset_root):
    frames, _, _ = RobotLogDataset(dataset_root, num_steps=2, split="all", resolution=8)[0]
    assert frames.shape == (2, 3, 8, 8)


def test_split_by_episode(dataset_root):
    train = RobotLogDataset(dataset_root, num_steps=2, split="train", val_fraction=0.4, split_seed=1)
    val = RobotLogDataset(dataset_root, num_steps=2, split="val", val_fraction=0.4, split_seed=1)
    assert len(val.episodes) == 2 and sorted(train.episodes + val.episodes) == list(range(5))
    assert {e for e, _ in train.windows} == set(train.episodes)
    assert {int(val[i][1][0, 2]) for i in range(len(val))} == set(val.episodes)
    other = RobotLogDataset(dataset_root, num_steps=2, split="val", val_fraction=0.4, split_seed=2)
    assert len(other.episodes) == 2
    with pytest.raises(ValueError, match="split must be one of"):
        RobotLogDataset(dataset_root, split="test")


def test_val_range_in_info_json_is_used(dataset_root):
    info_path = dataset_root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["splits"] = {"train": "0:3", "val": "3:5"}
    info_path.write_text(json.dumps(info))
    assert RobotLogDataset(dataset_root, num_steps=2, split="val").episodes == [3, 4]
    assert RobotLogDataset(dataset_root, num_steps=2, split="train").episodes == [0, 1, 2]


def test_writer_resumes_after_last_complete_group(tmp_path):
    full = write_dataset(tmp_path / "full")
    root = tmp_path / "resumed"
    writer = LeRobotWriter(root, 5, features(), robot_type="test", episodes_per_file=2)
    row = 0
    for e, length in enumerate(LENGTHS[:3]):  # the third episode stays buffered: the "crash" loses it
        writer.add_episode(*episode(row, e, length), task=f"task {e % 2}", metadata={"success": e % 2 == 0})
        row += length
    writer = LeRobotWriter(root, 5, features(), robot_type="test", episodes_per_file=2)
    assert writer.num_episodes == 2
    row = sum(LENGTHS[:2])
    for e, length in list(enumerate(LENGTHS))[2:]:
        writer.add_episode(*episode(row, e, length), task=f"task {e % 2}", metadata={"success": e % 2 == 0})
        row += length
    writer.close()
    for f in ["data/chunk-000/file-002.parquet", "meta/episodes/chunk-000/file-001.parquet"]:
        assert pq.read_table(root / f).equals(pq.read_table(full / f)), f
    assert json.loads((root / "meta/info.json").read_text()) == json.loads((full / "meta/info.json").read_text())
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["action"]["std"] == pytest.approx(json.loads((full / "meta/stats.json").read_text())["action"]["std"])
    with pytest.raises(DatasetFormatError, match="other fps/features"):
        LeRobotWriter(root, 10, features(10))


def test_writer_rejects_bad_episodes(tmp_path):
    writer = LeRobotWriter(tmp_path, 5, features())
    frames, vectors = episode(0, 0, 4)
    vectors["action"][2, 3] = np.nan
    with pytest.raises(DatasetFormatError, match="episode 0, feature 'action': NaN/inf at frame 2"):
        writer.add_episode(frames, vectors, task="t")
    frames, vectors = episode(0, 0, 4)
    with pytest.raises(DatasetFormatError, match="feature 'observation.state': expected shape"):
        writer.add_episode(frames, {**vectors, "observation.state": vectors["observation.state"][:, :6]}, task="t")
    with pytest.raises(DatasetFormatError, match=f"feature '{CAMERA}': expected uint8"):
        writer.add_episode({CAMERA: frames[CAMERA][:3]}, vectors, task="t")


def test_reads_dataset_written_by_lerobot():
    """tests/fixtures/lerobot_v30_tiny was written by LeRobot's LeRobotDataset (see its README)."""
    ds = RobotLogDataset(FIXTURE, num_steps=4, split="all")
    assert ds.meta.fps == 10 and ds.meta.tasks == ["pick up the cube", "push the cube"]
    assert len(ds) == (12 - 3) + (15 - 3) + (9 - 3)
    for idx in range(len(ds)):
        frames, states, actions = ds[idx]
        assert frames.shape == (4, 3, 48, 64) and actions.shape == (3, 7)
        image = denormalize_frames(frames).reshape(4, -1, 3).mean(1)
        frame_index, episode_index = states[:, 1].numpy(), states[:, 2].numpy()
        expected = np.stack([16 * frame_index, 80 * episode_index, np.full(4, 128)], 1)
        assert np.abs(image - expected).max() <= 4  # AV1, lossy
        assert torch.allclose(actions, states[1:] - states[:-1])


# ----------------------------------------------------------------------------- bad inputs


def rewrite_column(path: Path, column: str, transform) -> None:
    table = pq.read_table(path)
    values = transform(np.array(table[column].to_pylist()))
    field = table.schema.field(column)
    array = pa.array(values.tolist(), type=field.type) if values.ndim == 1 else pa.array(values.tolist())
    pq.write_table(table.set_column(table.column_names.index(column), column, array), path)


def test_missing_files(dataset_root):
    (dataset_root / "data/chunk-000/file-001.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"file-001.parquet: missing \(data of episodes \[2, 3\]\)"):
        RobotLogDataset(dataset_root, split="all", num_steps=2)
    shutil.rmtree(dataset_root / "data")
    (dataset_root / "meta/info.json").unlink()
    with pytest.raises(FileNotFoundError, match="info.json: missing"):
        RobotLogDataset(dataset_root)


def test_missing_video_file(dataset_root):
    (dataset_root / f"videos/{CAMERA}/chunk-000/file-002.mp4").unlink()
    with pytest.raises(FileNotFoundError, match=rf"file-002.mp4: missing \(feature '{CAMERA}', episodes \[4\]\)"):
        RobotLogDataset(dataset_root, split="all", num_steps=2)


def test_missing_feature_and_wrong_dims(dataset_root):
    with pytest.raises(DatasetFormatError, match="feature 'observation.images.wrist' missing; the dataset has"):
        RobotLogDataset(dataset_root, camera_key="observation.images.wrist")
    with pytest.raises(DatasetFormatError, match=r"feature 'action' has shape \[7\], expected \[6\]"):
        RobotLogDataset(dataset_root, action_dim=6)
    path = dataset_root / "data/chunk-000/file-000.parquet"
    rewrite_column(path, "observation.state", lambda v: v[:, :6])
    with pytest.raises(DatasetFormatError, match=r"file-000.parquet: episode 0, feature 'observation.state': "
                                                 r"expected shape \[L, 7\], got \[6, 6\]"):
        RobotLogDataset(dataset_root, split="all", num_steps=2)


@pytest.mark.parametrize("key", ["observation.state", "action"])
def test_nan_or_inf_in_vectors(dataset_root, key):
    def poison(v):
        v = v.astype(np.float32)
        v[8, 4] = np.inf if key == "action" else np.nan  # row 8 = episode 1, frame 2
        return v

    rewrite_column(dataset_root / "data/chunk-000/file-000.parquet", key, poison)
    with pytest.raises(DatasetFormatError, match=rf"file-000.parquet: episode 1, feature '{key}': NaN/inf at frame 2"):
        RobotLogDataset(dataset_root, split="all", num_steps=2)


def test_timestamps_not_matching_fps(dataset_root):
    rewrite_column(dataset_root / "data/chunk-000/file-001.parquet", "timestamp",
                   lambda t: (t * 5 / 4).astype(np.float32))  # as if recorded at 4 fps
    with pytest.raises(DatasetFormatError, match="file-001.parquet: episode 2, feature 'timestamp': frame 1 at 0.2500 s, "
                                                 "but fps 5 puts it at 0.2000 s"):
        RobotLogDataset(dataset_root, split="all", num_steps=2)


def test_video_frame_count_not_matching_rows(dataset_root):
    frames, _ = episode(0, 0, LENGTHS[4] - 2)
    write_video(dataset_root / f"videos/{CAMERA}/chunk-000/file-002.mp4", frames[CAMERA], fps=5)
    with pytest.raises(DatasetFormatError, match=rf"file-002.mp4: episode 4, feature '{CAMERA}': video has 3 frames"):
        RobotLogDataset(dataset_root, split="all", num_steps=2)


def test_episode_rows_not_matching_metadata(dataset_root):
    path = dataset_root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    lengths = table["length"].to_numpy().copy()
    lengths[1] += 1
    pq.write_table(table.set_column(table.column_names.index("length"), "length", pa.array(lengths)), path)
    with pytest.raises(DatasetFormatError, match="file-000.parquet: episode 1: 9 rows, episode metadata says 10"):
        RobotLogDataset(dataset_root, split="all", num_steps=2)


def test_too_long_windows_are_an_error(dataset_root):
    with pytest.raises(ValueError, match="no window of 10 frames"):
        RobotLogDataset(dataset_root, num_steps=10, split="all")


# ----------------------------------------------------------------------------- loaders and LeRobot itself


def test_dataloader_with_workers(dataset_root):
    ds = RobotLogDataset(dataset_root, num_steps=3, split="all")
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0),
                        multiprocessing_context=worker_context(2))
    seen = 0
    for frames, states, actions in loader:
        assert frames.shape[1:] == (3, 3, 16, 16) and states.shape[1:] == (3, 7) and actions.shape[1:] == (2, 7)
        seen += len(frames)
    assert seen == len(ds)


LEROBOT_PYTHON = os.environ.get("LEROBOT_PYTHON")


@pytest.mark.skipif(not LEROBOT_PYTHON, reason="set LEROBOT_PYTHON to a Python where LeRobot's LeRobotDataset "
                    "imports (PyPI `lerobot`, or its standalone `lerobot-dataset`) with a video decoder (torchcodec); "
                    "LeRobot's torchvision does not import beside the CPU torch 2.13 build, so use a separate venv")
def test_lerobot_reads_our_dataset(dataset_root):
    script = textwrap.dedent(f"""
        import json, sys
        try:
            from lerobot.datasets.lerobot_dataset import LeRobotDataset     # PyPI lerobot
        except ImportError:
            from ledataset.datasets.lerobot_dataset import LeRobotDataset   # PyPI lerobot-dataset (standalone)
        ds = LeRobotDataset("local/ours", root=sys.argv[1])
        out = {{"len": len(ds), "episodes": ds.num_episodes, "tasks": list(ds.meta.tasks.index), "items": []}}
        for i in range(len(ds)):
            item = ds[i]
            out["items"].append({{"red": float(item["{CAMERA}"][0].mean()) * 255,
                                  "state": item["observation.state"].tolist(), "task": item["task"],
                                  "episode": int(item["episode_index"]), "frame": int(item["frame_index"])}})
        print(json.dumps(out))
    """)
    result = subprocess.run([LEROBOT_PYTHON, "-c", script, str(dataset_root)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert (out["len"], out["episodes"], out["tasks"]) == (35, 5, ["task 0", "task 1"])
    for row, item in enumerate(out["items"]):
        assert item["state"][0] == row and item["frame"] == item["state"][1] and item["episode"] == item["state"][2]
        assert abs(item["red"] - 5 * row) <= 3  # LeRobot finds the same frame for the row as we do
        assert item["task"] == f"task {item['episode'] % 2}"
