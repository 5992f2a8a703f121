#!/usr/bin/env bash
# The pipeline on Meta-World (envs/metaworld.py; pip install --no-deps metaworld==3.1.1), with each stage's
# Meta-World config or overrides only: collect videos -> pretrain the encoder -> collect robot logs ->
# fine-tune the AC predictor -> its goal-state head -> benchmark (configs/experiment/metaworld.yaml, the
# learned methods beside their no-predictor twins and the baselines).
#   bash scripts/pipeline_metaworld.sh                                      # everything under runs/pipeline_metaworld
#   ENCODER=checkpoints/vjepa_ac_tiny bash scripts/pipeline_metaworld.sh   # no pretraining: transfer that encoder
#   ARGS_finetune="train.steps=1500" bash scripts/pipeline_metaworld.sh     # extra Hydra overrides for a stage
DEFAULT_RUN=runs/pipeline_metaworld
source "$(dirname "$0")/pipeline_lib.sh"   # $RUN, MUJOCO_GL, stage(), benchmark_pipeline()
benchmark_pipeline metaworld
