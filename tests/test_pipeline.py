"""scripts/pipeline.sh from nothing to the benchmark table, at toy sizes (slow: ~minutes on 2 cores)."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TOY = {
    "ARGS_collect_videos": "num_videos=4 frames_per_video=24 num_workers=1",
    "ARGS_pretrain": "train.steps=3 optim.warmup_steps=1 train.batch_size=4 data.num_workers=0 "
                     "train.checkpoint_every=2 train.log_every=1",
    "ARGS_collect_robot_logs": "episodes_per_task=3 episodes_per_file=4 num_workers=1",
    "ARGS_collect_head_logs": "episodes_per_task=3 episodes_per_file=4 num_workers=1",
    "ARGS_collect_wrist_logs": "episodes_per_task=3 episodes_per_file=4 num_workers=1",
    "ARGS_finetune_wrist": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_wrist_state_head": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_finetune": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_finetune_high": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_state_head": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_state_head_high": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_collect_prior_logs": "episodes_per_task=3 episodes_per_file=4 num_workers=1",
    "ARGS_collect_more_prior_logs": "episodes_per_task=4 episodes_per_file=4 num_workers=1",
    "ARGS_subgoal_prior": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_subgoal_prior_wrist": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 "
                                "train.log_every=1",
    "ARGS_subgoal_prior_oracle": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 "
                                 "train.log_every=1",
    "ARGS_finetune_learned_state": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 "
                                   "train.log_every=1",
    "ARGS_state_head_learned_state": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 "
                                     "train.log_every=1",
    "ARGS_latent_distance": "train.steps=3 train.batch_size=8 optim.warmup_steps=1 train.val_every=2 train.log_every=1",
    "ARGS_eval_dynamics": "eval.max_windows=16",
    "ARGS_benchmark": "episodes=1 tasks=[reach] run_methods=[random,learned_cem,learned_cem_subgoals,"
                      "learned_cem_prior_wrist] num_workers=0 videos_per_cell=0 envs.reach.episode_steps=3",
}


@pytest.mark.slow
def test_pipeline_runs_every_stage_and_writes_the_table(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "RUN": str(run), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), **TOY}
    subprocess.run(["bash", "scripts/pipeline.sh"], cwd=REPO, env=env, check=True, timeout=1800)
    results = json.loads((run / "benchmark" / "results.json").read_text())
    assert {c["method"] for c in results["cells"]} == {"random", "learned_cem", "learned_cem_subgoals",
                                                       "learned_cem_prior_wrist"}
    assert all(c["episodes"] == 1 for c in results["cells"])
    times = (run / "stage_times.txt").read_text()
    for stage in ("collect_videos", "pretrain", "collect_robot_logs", "finetune", "collect_head_logs", "state_head",
                  "collect_wrist_logs", "finetune_wrist", "wrist_state_head", "finetune_high", "state_head_high",
                  "collect_prior_logs", "subgoal_prior", "collect_more_prior_logs", "subgoal_prior_wrist",
                  "subgoal_prior_oracle",
                  "finetune_learned_state", "state_head_learned_state", "latent_distance", "eval_dynamics",
                  "benchmark"):
        assert stage in times
    assert (run / "finetune" / "checkpoint" / "model.safetensors").is_file()
    assert "state_head:" in (run / "state_head" / "checkpoint" / "config.yaml").read_text()
    assert "observation.images.wrist" in (run / "wrist_state_head" / "checkpoint" / "config.yaml").read_text()
    assert "frame_stride: 4" in (run / "finetune_high" / "checkpoint" / "config.yaml").read_text()
    assert "views: 2" in (run / "subgoal_prior_wrist" / "checkpoint" / "config.yaml").read_text()
    learned = (run / "latent_distance" / "checkpoint" / "config.yaml").read_text()
    assert "predicts_state: true" in learned and "latent_distance:" in learned and "state_head:" in learned
