"""Collect -> read round trips for both sim collectors (tiny settings), resumption, worker independence."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from vjepa_ac.data import RobotLogDataset, VideoClipDataset
from vjepa_ac.data.video_io import probe_video, read_video
from vjepa_ac.data.lerobot_format import ENVIRONMENT_STATE_KEY
from vjepa_ac.state_action import ACTION_NAMES, ENVIRONMENT_STATE_NAMES, STATE_NAMES

envs = pytest.importorskip("envs")
from vjepa_ac.data import sim_collection  # noqa: E402  (needs envs)

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["reach", "grasp", "reach_with_object", "pick_place"]  # configs/collect_robot_logs.yaml


def collect(name: str, overrides: list[str]) -> sim_collection.CollectionStats:
    """The collector `name` on configs/<name>.yaml with overrides (what scripts/<name>.py runs)."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose(name, overrides=overrides)
    return getattr(sim_collection, name)(cfg)


def test_collect_videos_round_trip_resume_and_workers(tmp_path):
    common = ["num_videos=3", "frames_per_video=12", "segment_steps=[3,6]"]
    stats = collect("collect_videos", [f"output_dir={tmp_path / 'one'}", "num_workers=1", *common])
    assert (stats.items, stats.frames) == (3, 36) and stats.frames_per_s > 0
    videos = sorted((tmp_path / "one").glob("*.mp4"))
    assert [v.name for v in videos] == ["video_000000.mp4", "video_000001.mp4", "video_000002.mp4"]
    assert all(probe_video(v, count_frames=True).num_frames == 12 for v in videos)

    collect("collect_videos", [f"output_dir={tmp_path / 'two'}", "num_workers=2", *common])
    for v in videos:  # each video's seed is its own: the worker count does not change the corpus
        assert np.array_equal(read_video(v), read_video(tmp_path / "two" / v.name))

    before = videos[0].stat().st_mtime_ns
    collect("collect_videos", [f"output_dir={tmp_path / 'one'}", "num_workers=1", "num_videos=4", *common[1:]])
    assert videos[0].stat().st_mtime_ns == before  # resumed: only the missing video was rendered
    assert len(list((tmp_path / "one").glob("*.mp4"))) == 4

    ds = VideoClipDataset(tmp_path / "one", frames_per_clip=4, frame_step=2, resolution=32)
    assert len(ds) == 4 and not ds.skipped  # one 7-frame clip per 12-frame video
    clip = ds[0]
    assert clip.shape == (4, 3, 32, 32) and clip.isfinite().all()


def test_collect_robot_logs_round_trip_and_resume(tmp_path):
    out = tmp_path / "logs"
    common = [f"output_dir={out}", "episodes_per_file=2", "random_fraction=0.5", "num_workers=2"]
    stats = collect("collect_robot_logs", ["episodes_per_task=1", *common])
    steps = {t: envs.load_task_config(t)["episode_steps"] for t in TASKS}
    assert (stats.items, stats.frames) == (4, sum(steps.values()) + 4) and stats.successes <= 4
    first_file = (out / "data/chunk-000/file-000.parquet").read_bytes()
    stats = collect("collect_robot_logs", ["episodes_per_task=2", *common])  # resumes after the first 4 episodes
    assert stats.items == 4
    assert (out / "data/chunk-000/file-000.parquet").read_bytes() == first_file

    ds = RobotLogDataset(out, num_steps=3, split="all")
    episodes = ds.meta.episodes
    assert episodes["episode_index"].tolist() == list(range(8))
    assert episodes["job_index"].tolist() == list(range(8))
    assert episodes["env_task"].tolist() == TASKS * 2
    assert episodes["length"].tolist() == [steps[t] + 1 for t in episodes["env_task"]]
    assert set(episodes["policy"]) <= {"expert", "random"} and episodes["success"].dtype == bool
    assert len(ds.meta.tasks) == 4 and ds.meta.fps == 5
    assert ds.meta.features["observation.state"]["names"] == list(STATE_NAMES)
    assert ds.meta.features["action"]["names"] == list(ACTION_NAMES)

    frames, states, actions = ds[0]
    assert frames.shape == (3, 3, 64, 64) and states.shape == (3, 7) and actions.shape == (2, 7)
    states_all = np.concatenate([ds.states[e] for e in ds.episodes])
    assert np.isfinite(states_all).all() and (states_all[:, 6] >= 0).all() and (states_all[:, 6] <= 1).all()
    # row t's action moves the end-effector from state t to t+1: position deltas follow the actions
    moved = np.concatenate([np.diff(ds.states[e][:, :3], axis=0).ravel() for e in ds.episodes])
    commanded = np.concatenate([ds.actions[e][:-1, :3].ravel() for e in ds.episodes])
    assert np.corrcoef(moved, commanded)[0, 1] > 0.5
    assert all((ds.actions[e][-1] == 0).all() for e in ds.episodes)  # no action after the last frame

    # the PRIVILEGED environment state rides along, read only when asked for
    assert ds.meta.features[ENVIRONMENT_STATE_KEY]["names"] == list(ENVIRONMENT_STATE_NAMES) and not ds.environment_states
    privileged = RobotLogDataset(out, num_steps=3, split="all", environment_state_key=ENVIRONMENT_STATE_KEY)
    for e in privileged.episodes:
        env_state, state = privileged.environment_states[e], privileged.states[e]
        assert env_state.shape == (len(state), len(ENVIRONMENT_STATE_NAMES))
        np.testing.assert_allclose(env_state[:, :3], state[:, :3], atol=1e-4)   # the end effector, twice


def test_mistakes_and_detours_are_logged_with_the_step_the_expert_took_over(tmp_path):
    out = tmp_path / "logs"
    collect("collect_robot_logs", [f"output_dir={out}", "episodes_per_task=2", "random_fraction=0", "num_workers=1",
                                   "mistake_fraction=1", "detour_fraction=1", "tasks=[reach,grasp,reach_with_object]",
                                   "noise_levels=[0.0]"])
    episodes = RobotLogDataset(out, num_steps=2, split="all").meta.episodes
    grasping, reaching = episodes["env_task"] == "grasp", episodes["env_task"] == "reach"
    assert episodes["mistake"].tolist() == grasping.tolist()  # only a grasp can be missed
    assert episodes["detour"].tolist() == reaching.tolist()   # only a reach detours to the object
    assert (episodes.loc[~(grasping | reaching), "takeover"] == 0).all()
    takeover, length = episodes.loc[grasping | reaching, "takeover"], episodes.loc[grasping | reaching, "length"]
    assert (takeover > 0).all() and (takeover < length).all() and episodes["success"].all()


def test_a_second_camera_is_recorded_beside_the_first_with_the_same_episodes(tmp_path):
    common = ["episodes_per_task=1", "random_fraction=0", "num_workers=1", "tasks=[grasp]", "noise_levels=[0.0]"]
    collect("collect_robot_logs", [f"output_dir={tmp_path / 'front'}", *common])
    collect("collect_robot_logs", [f"output_dir={tmp_path / 'both'}", "wrist_camera_key=observation.images.wrist",
                                   *common])
    front = RobotLogDataset(tmp_path / "front", num_steps=2, split="all")
    both = {key: RobotLogDataset(tmp_path / "both", camera_key=key, num_steps=2, split="all")
            for key in ("observation.images.front", "observation.images.wrist")}
    np.testing.assert_array_equal(both["observation.images.front"].states[0], front.states[0])  # a camera moves nothing
    frames = {key: read_video(next((tmp_path / "both" / "videos" / key).rglob("*.mp4"))) for key in both}
    assert frames["observation.images.front"].shape == frames["observation.images.wrist"].shape
    assert len(frames["observation.images.wrist"]) == len(front.states[0])
    assert np.abs(frames["observation.images.front"].astype(int) - frames["observation.images.wrist"]).mean() > 10
