"""scripts/pipeline_metaworld.sh from nothing to the Meta-World table, at toy sizes (slow: ~minutes on 2 cores).

Needs `pip install --no-deps metaworld==3.1.1`; skipped without it."""
import json
import os
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("metaworld")

REPO = Path(__file__).resolve().parents[1]
TRAIN = "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1"
TASKS = "tasks=[metaworld-reach-v3,metaworld-pick-place-v3]"
TOY = {
    "ARGS_collect_videos": f"num_videos=2 frames_per_video=24 num_workers=1 {TASKS}",
    "ARGS_pretrain": "train.steps=3 optim.warmup_steps=1 train.batch_size=2 data.num_workers=0 "
                     "train.checkpoint_every=2 train.log_every=1",
    "ARGS_collect_robot_logs": f"episodes_per_task=3 episodes_per_file=3 num_workers=1 {TASKS}",
    "ARGS_finetune": TRAIN,
    "ARGS_state_head": TRAIN,
    "ARGS_benchmark": "episodes=1 tasks=[metaworld-pick-place-v3] num_workers=0 videos_per_cell=0 "
                      "envs.metaworld-pick-place-v3.episode_steps=3",
}


@pytest.mark.slow
def test_metaworld_pipeline_runs_every_stage_and_writes_the_table(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "RUN": str(run), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), **TOY}
    subprocess.run(["bash", "scripts/pipeline_metaworld.sh"], cwd=REPO, env=env, check=True, timeout=1800)
    results = json.loads((run / "benchmark" / "results.json").read_text())
    assert {c["method"] for c in results["cells"]} == {
        "random", "expert", "oracle_cem_subgoals", "learned_cem_mw", "learned_cem_mw_predictor_off",
        "learned_cem_subgoals_mw", "learned_cem_subgoals_mw_predictor_off"}
    assert all(c["episodes"] == 1 and c["task"] == "metaworld-pick-place-v3" for c in results["cells"])
    times = (run / "stage_times.txt").read_text()
    for stage in ("collect_videos", "pretrain", "collect_robot_logs", "finetune", "state_head", "benchmark"):
        assert stage in times
    info = json.loads((run / "robot_logs" / "meta" / "info.json").read_text())
    assert info["robot_type"] == "metaworld_sawyer" and info["total_episodes"] == 6
    assert "state_head:" in (run / "state_head" / "checkpoint" / "config.yaml").read_text()
