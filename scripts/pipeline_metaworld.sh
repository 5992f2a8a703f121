#!/usr/bin/env bash
# The pipeline on Meta-World (envs/metaworld.py; pip install --no-deps metaworld==3.1.1), with each stage's
# Meta-World config or overrides only: collect videos -> pretrain the encoder -> collect robot logs ->
# fine-tune the AC predictor -> its goal-state head -> benchmark (configs/experiment/metaworld.yaml, the
# learned methods beside their no-predictor twins and the baselines).
#   bash scripts/pipeline_metaworld.sh                                      # everything under runs/pipeline_metaworld
#   ENCODER=checkpoints/vjepa_ac_tiny bash scripts/pipeline_metaworld.sh   # no pretraining: transfer that encoder
#   ARGS_finetune="train.steps=1500" bash scripts/pipeline_metaworld.sh     # extra Hydra overrides for a stage
DEFAULT_RUN=runs/pipeline_metaworld
source "$(dirname "$0")/pipeline_lib.sh"   # $RUN, MUJOCO_GL, stage()
echo "pipeline_metaworld started $(date -u +%FT%TZ) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >> "$TIMES"
if [[ -z "${ENCODER:-}" ]]; then
  stage collect_videos python scripts/collect_videos.py --config-name collect_videos_metaworld output_dir="$RUN/videos"
  stage pretrain python scripts/pretrain.py data.root="$RUN/videos" output_dir="$RUN/pretrain" resume=true
  ENCODER="$RUN/pretrain/checkpoint"
fi
stage collect_robot_logs python scripts/collect_robot_logs.py --config-name collect_robot_logs_metaworld \
  output_dir="$RUN/robot_logs"
stage finetune python scripts/finetune.py encoder.path="$ENCODER" data.root="$RUN/robot_logs" \
  output_dir="$RUN/finetune" cache.dir="$RUN/embedding_cache" resume=true
stage state_head python scripts/train_state_head.py world_model="$RUN/finetune/checkpoint" data.root="$RUN/robot_logs" \
  output_dir="$RUN/state_head" cache.dir="$RUN/embedding_cache" resume=true
stage benchmark python scripts/benchmark.py +experiment=metaworld metaworld_world_model="$RUN/state_head/checkpoint" \
  output_dir="$RUN/benchmark"
echo "pipeline_metaworld finished $(date -u +%FT%TZ)" >> "$TIMES"
cat "$TIMES"
