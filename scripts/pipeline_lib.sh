# Shared by the pipeline profiles (scripts/pipeline.sh, pipeline_metaworld.sh, pipeline_ogbench.sh): sourced,
# not run. Sets $RUN (default runs/pipeline, or the profile's $DEFAULT_RUN), MUJOCO_GL and $TIMES, and defines
# `stage NAME COMMAND...`: the command with the extra Hydra overrides in $ARGS_NAME, logged to $RUN/NAME.log,
# its wall time appended to $TIMES; and `benchmark_pipeline NAME`: a benchmark's profile (below).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-${DEFAULT_RUN:-runs/pipeline}}
export MUJOCO_GL=${MUJOCO_GL:-egl}
mkdir -p "$RUN"
TIMES="$RUN/stage_times.txt"

stage() {  # stage NAME COMMAND...: run with the overrides in $ARGS_NAME, log to $RUN/NAME.log, time it
  local name=$1 start=$SECONDS var="ARGS_$1" extra
  shift
  read -ra extra <<< "${!var:-}"
  echo "== $name: $* ${extra[*]}  (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  "$@" "${extra[@]}" 2>&1 | tee "$RUN/$name.log"
  printf '%-20s %6d s\n' "$name" $((SECONDS - start)) | tee -a "$TIMES"
}


# benchmark_pipeline NAME: the whole pipeline on another benchmark with its configs only (NAME = metaworld or
# ogbench): configs/collect_videos_NAME.yaml -> pretrain -> configs/collect_robot_logs_NAME.yaml -> finetune ->
# state head -> benchmark +experiment=NAME on the new checkpoint (NAME_world_model). ENCODER=<checkpoint> skips
# the videos and pretraining and transfers that encoder.
benchmark_pipeline() {
  local name=$1 encoder=${ENCODER:-}
  echo "pipeline_$name started $(date -u +%FT%TZ) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    >> "$TIMES"
  if [[ -z "$encoder" ]]; then
    stage collect_videos python scripts/collect_videos.py --config-name "collect_videos_$name" output_dir="$RUN/videos"
    stage pretrain python scripts/pretrain.py data.root="$RUN/videos" output_dir="$RUN/pretrain" resume=true
    encoder="$RUN/pretrain/checkpoint"
  fi
  stage collect_robot_logs python scripts/collect_robot_logs.py --config-name "collect_robot_logs_$name" \
    output_dir="$RUN/robot_logs"
  stage finetune python scripts/finetune.py encoder.path="$encoder" data.root="$RUN/robot_logs" \
    output_dir="$RUN/finetune" cache.dir="$RUN/embedding_cache" resume=true
  stage state_head python scripts/train_state_head.py world_model="$RUN/finetune/checkpoint" \
    data.root="$RUN/robot_logs" output_dir="$RUN/state_head" cache.dir="$RUN/embedding_cache" resume=true
  stage benchmark python scripts/benchmark.py +experiment="$name" "${name}_world_model=$RUN/state_head/checkpoint" \
    output_dir="$RUN/benchmark"
  echo "pipeline_$name finished $(date -u +%FT%TZ)" >> "$TIMES"
  cat "$TIMES"
}
