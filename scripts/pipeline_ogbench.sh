#!/usr/bin/env bash
# The pipeline on OGBench's visual single-cube task (envs/ogbench.py; pip install -e '.[ogbench]'), with each
# stage's OGBench config or overrides only: collect videos -> pretrain the encoder -> collect robot logs ->
# fine-tune the AC predictor -> its goal-state head -> benchmark (configs/experiment/ogbench.yaml, the learned
# methods beside their no-predictor twins and the baselines, on OGBench's five evaluation tasks).
#   bash scripts/pipeline_ogbench.sh                                      # everything under runs/pipeline_ogbench
#   ENCODER=checkpoints/vjepa_ac_tiny bash scripts/pipeline_ogbench.sh   # no pretraining: transfer that encoder
#   ARGS_finetune="train.steps=1500" bash scripts/pipeline_ogbench.sh     # extra Hydra overrides for a stage
DEFAULT_RUN=runs/pipeline_ogbench
source "$(dirname "$0")/pipeline_lib.sh"   # $RUN, MUJOCO_GL, stage(), benchmark_pipeline()
benchmark_pipeline ogbench
