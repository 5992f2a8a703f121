#!/usr/bin/env bash
# From nothing to the benchmark table on a 2-core CPU with the tiny configuration:
#   collect video corpus -> pretrain encoder -> collect robot logs -> fine-tune AC predictor
#   -> collect 5x more robot logs for the goal-state head -> train the head on them -> fine-tune the high-level (4-step macro-action) predictor on the
#   same encoder and logs -> its goal-state head -> expert demonstrations -> the subgoal priors -> a predictor of
#   the next state too, its head and the learned latent distance -> dynamics evaluation -> benchmark
# Sizes and budgets are each stage's own Hydra config (configs/<stage>.yaml); this script only wires
# the stages' folders together under $RUN and prints each stage's wall time. Every stage resumes or
# skips finished work, so re-running after an interruption continues where it stopped.
#   bash scripts/pipeline.sh                       # everything under runs/pipeline
#   RUN=runs/other bash scripts/pipeline.sh        # elsewhere
#   ARGS_pretrain="train.steps=3000" bash scripts/pipeline.sh   # extra Hydra overrides for a stage
# Every stage writes into its own output_dir (Hydra's .hydra/ and the stage's log included).
source "$(dirname "$0")/pipeline_lib.sh"   # $RUN, MUJOCO_GL, stage()
echo "pipeline started $(date -u +%FT%TZ) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >> "$TIMES"
stage collect_videos python scripts/collect_videos.py output_dir="$RUN/videos"
stage pretrain python scripts/pretrain.py data.root="$RUN/videos" output_dir="$RUN/pretrain" resume=true
stage collect_robot_logs python scripts/collect_robot_logs.py output_dir="$RUN/robot_logs"
stage finetune python scripts/finetune.py encoder.path="$RUN/pretrain/checkpoint" data.root="$RUN/robot_logs" \
  output_dir="$RUN/finetune" cache.dir="$RUN/embedding_cache" resume=true
# the head overfits the fine-tuning logs (400 episodes: 1.2 cm train vs 3.4 cm held-out); 2,000 cost 5 min more
stage collect_head_logs python scripts/collect_robot_logs.py output_dir="$RUN/head_logs" episodes_per_task=500
stage state_head python scripts/train_state_head.py world_model="$RUN/finetune/checkpoint" data.root="$RUN/head_logs" \
  output_dir="$RUN/state_head" cache.dir="$RUN/embedding_cache" resume=true
# the gripper closure is read from the wrist view (docs/experiments.md, "What limits grasping with subgoal images?"): a wrist
# world model on the same frozen encoder, and its goal-state head
stage collect_wrist_logs python scripts/collect_robot_logs.py output_dir="$RUN/wrist_logs" '+env_overrides.camera=wrist' \
  camera_key=observation.images.wrist
stage finetune_wrist python scripts/finetune.py encoder.path="$RUN/pretrain/checkpoint" data.root="$RUN/wrist_logs" \
  data.camera_key=observation.images.wrist output_dir="$RUN/finetune_wrist" cache.dir="$RUN/embedding_cache" resume=true
stage wrist_state_head python scripts/train_state_head.py world_model="$RUN/finetune_wrist/checkpoint" \
  data.root="$RUN/wrist_logs" data.camera_key=observation.images.wrist output_dir="$RUN/wrist_state_head" \
  cache.dir="$RUN/embedding_cache" resume=true
stage finetune_high python scripts/finetune.py --config-name finetune_high encoder.path="$RUN/pretrain/checkpoint" \
  data.root="$RUN/robot_logs" output_dir="$RUN/finetune_high" cache.dir="$RUN/embedding_cache" resume=true
stage state_head_high python scripts/train_state_head.py world_model="$RUN/finetune_high/checkpoint" \
  data.root="$RUN/head_logs" output_dir="$RUN/state_head_high" cache.dir="$RUN/embedding_cache" resume=true
# two-level planning from one goal image: the subgoal prior over the head's world model, and the privileged
# one over the logs' environment state (docs/experiments.md, "Single goal image: the learned subgoal prior")
# the learned prior overfits the head logs' 819 calm demonstrations: 2,698 more expert ones took it from 8 to 15 of
# 20 grasps (docs/experiments.md)
# the wrist camera is recorded beside the front one: the second prior also reads it (PickPlace 15 -> 65 %, docs/experiments.md)
stage collect_prior_logs python scripts/collect_robot_logs.py output_dir="$RUN/prior_logs" episodes_per_task=750 \
  random_fraction=0 'noise_levels=[0.0,0.05,0.1]' seed=1 wrist_camera_key=observation.images.wrist
stage subgoal_prior python scripts/train_subgoal_prior.py world_model="$RUN/state_head/checkpoint" \
  data.root="$RUN/prior_logs" output_dir="$RUN/subgoal_prior" cache.dir="$RUN/embedding_cache" train.steps=10000 \
  resume=true
# the wrist prior on twice the demonstrations (the collector resumes: 3,000 more episodes, same seed): PickPlace
# 59-67 -> 75 of 100 tuning seeds (docs/experiments.md, "The prior also reads the wrist camera")
stage collect_more_prior_logs python scripts/collect_robot_logs.py output_dir="$RUN/prior_logs" episodes_per_task=1500 \
  random_fraction=0 'noise_levels=[0.0,0.05,0.1]' seed=1 wrist_camera_key=observation.images.wrist
stage subgoal_prior_wrist python scripts/train_subgoal_prior.py world_model="$RUN/state_head/checkpoint" \
  data.root="$RUN/prior_logs" 'data.extra_camera_keys=[observation.images.wrist]' subgoal_prior.token_dim=16 \
  output_dir="$RUN/subgoal_prior_wrist" \
  cache.dir="$RUN/embedding_cache" train.steps=10000 resume=true
stage subgoal_prior_oracle python scripts/train_subgoal_prior.py data.root="$RUN/head_logs" \
  data.observation=environment_state subgoal_prior.reads_state=false train.steps=20000 \
  output_dir="$RUN/subgoal_prior_oracle" resume=true
# learned proprioception (docs/experiments.md, "Learned proprioception"): a predictor that also predicts the next
# robot state, fine-tuned on the head logs, its goal-state head, and the learned latent distance over it
stage finetune_learned_state python scripts/finetune.py encoder.path="$RUN/pretrain/checkpoint" data.root="$RUN/head_logs" \
  world_model.predictor.predicts_state=true output_dir="$RUN/finetune_learned_state" cache.dir="$RUN/embedding_cache" \
  resume=true
stage state_head_learned_state python scripts/train_state_head.py world_model="$RUN/finetune_learned_state/checkpoint" \
  data.root="$RUN/head_logs" output_dir="$RUN/state_head_learned_state" cache.dir="$RUN/embedding_cache" resume=true
stage latent_distance python scripts/train_latent_distance.py world_model="$RUN/state_head_learned_state/checkpoint" \
  data.root="$RUN/head_logs" output_dir="$RUN/latent_distance" cache.dir="$RUN/embedding_cache" resume=true
stage eval_dynamics python scripts/eval_dynamics.py checkpoint="$RUN/finetune/checkpoint" data.root="$RUN/robot_logs" \
  output_dir="$RUN/eval_dynamics"
# The default table (configs/benchmark.yaml, 7 methods) on this run's checkpoints; the experiments'
# methods (configs/experiment/) are left to `python scripts/benchmark.py +experiment=<name>`.
stage benchmark python scripts/benchmark.py methods.learned_cem.world_model="$RUN/state_head/checkpoint" \
  methods.learned_cem_subgoals.world_model.pixels="$RUN/state_head/checkpoint" output_dir="$RUN/benchmark" \
  methods.learned_cem_subgoals.world_model.wrist_pixels.checkpoint="$RUN/wrist_state_head/checkpoint" \
  methods.oracle_cem_prior.high_level.prior="$RUN/subgoal_prior_oracle/checkpoint" \
  methods.learned_cem_prior_wrist.world_model.pixels="$RUN/subgoal_prior_wrist/checkpoint" \
  methods.learned_cem_prior_wrist.world_model.wrist_pixels.checkpoint="$RUN/subgoal_prior_wrist/checkpoint"
echo "pipeline finished $(date -u +%FT%TZ)" >> "$TIMES"
cat "$TIMES"
