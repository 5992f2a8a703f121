# Shared by the pipeline profiles (scripts/pipeline.sh, scripts/pipeline_metaworld.sh): sourced, not run.
# Sets $RUN (default runs/pipeline, or the profile's $DEFAULT_RUN), MUJOCO_GL and $TIMES, and defines
# `stage NAME COMMAND...`: the command with the extra Hydra overrides in $ARGS_NAME, logged to $RUN/NAME.log,
# its wall time appended to $TIMES.
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

