"""scripts/pipeline_metaworld.sh and scripts/pipeline_ogbench.sh from nothing to each benchmark's table, at toy
sizes (slow: ~1 minute each on 2 cores).

Need Meta-World (`pip install --no-deps metaworld==3.1.1`) and OGBench (`pip install -e '.[ogbench]'`); each
is skipped without its package."""
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN = "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1"
# benchmark -> (its package, the tasks of the toy run, the benchmarked task, its robot_type, its learned suffix);
# 6 robot-log episodes either way
BENCHMARKS = {
    "metaworld": ("metaworld", "[metaworld-reach-v3,metaworld-pick-place-v3]", "metaworld-pick-place-v3",
                  "metaworld_sawyer", "mw"),
    "ogbench": ("ogbench", "[ogbench-visual-cube-single-v0]", "ogbench-visual-cube-single-v0", "ogbench_ur5e", "og"),
}
EPISODES = 6


def toy_overrides(tasks: str, task: str) -> dict[str, str]:
    per_task = EPISODES // len(tasks.split(","))
    return {
        "ARGS_collect_videos": f"num_videos=2 frames_per_video=24 num_workers=1 tasks={tasks}",
        "ARGS_pretrain": "train.steps=3 optim.warmup_steps=1 train.batch_size=2 data.num_workers=0 "
                         "train.checkpoint_every=2 train.log_every=1",
        "ARGS_collect_robot_logs": f"episodes_per_task={per_task} episodes_per_file=3 num_workers=1 tasks={tasks}",
        "ARGS_finetune": TRAIN,
        "ARGS_state_head": TRAIN,
        "ARGS_benchmark": f"episodes=1 tasks=[{task}] num_workers=0 videos_per_cell=0 envs.{task}.episode_steps=3",
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_pipeline_runs_every_stage_and_writes_the_table(tmp_path, name):
    package, tasks, task, robot_type, suffix = BENCHMARKS[name]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    run = tmp_path / "run"
    env = {**os.environ, "RUN": str(run), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
           **toy_overrides(tasks, task)}
    subprocess.run(["bash", f"scripts/pipeline_{name}.sh"], cwd=REPO, env=env, check=True, timeout=1800)
    results = json.loads((run / "benchmark" / "results.json").read_text())
    learned = f"learned_cem_{suffix}", f"learned_cem_subgoals_{suffix}"
    assert {c["method"] for c in results["cells"]} == {
        "random", "expert", "oracle_cem_subgoals", *learned, *(f"{m}_predictor_off" for m in learned)}
    assert all(c["episodes"] == 1 and c["task"] == task for c in results["cells"])
    times = (run / "stage_times.txt").read_text()
    for stage in ("collect_videos", "pretrain", "collect_robot_logs", "finetune", "state_head", "benchmark"):
        assert stage in times
    info = json.loads((run / "robot_logs" / "meta" / "info.json").read_text())
    assert info["robot_type"] == robot_type and info["total_episodes"] == EPISODES
    assert "state_head:" in (run / "state_head" / "checkpoint" / "config.yaml").read_text()
