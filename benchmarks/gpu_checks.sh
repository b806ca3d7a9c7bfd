#!/usr/bin/env bash
# Every GPU check of the issues in one prepared run (a lent machine's time is short):
# training throughput vs transformers and as a share of the measured bf16 matmul peak (expert
# loop, grouped GEMMs, compiled blocks), a short GRPO run, the engine's and the stages' device tests on CUDA. Logs go to $OUT.
#   bash benchmarks/gpu_checks.sh            (on the GPU machine: python3 there has torch + CUDA)
#   DEVICE=cpu PRESET=tiny bash benchmarks/gpu_checks.sh   (a dry run of the script itself)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/r1lab-gpu}; mkdir -p "$OUT"
PY=${PY:-python3}; DEVICE=${DEVICE:-cuda}; PRESET=${PRESET:-small}; BUDGET=${BUDGET:-480}
step() {  # step NAME TIMEOUT CMD...: runs unless the budget is spent; log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  if (( SECONDS + 20 > BUDGET )); then echo "== $name: skipped (budget)"; return; fi
  (( limit > BUDGET - SECONDS )) && limit=$(( BUDGET - SECONDS ))
  echo "== $name (limit ${limit}s, at ${SECONDS}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; echo "rc=$? after ${SECONDS}s"
  grep -E '^\{|passed|failed|error|Error' "$OUT/$name.log" | tail -n 4
}
$PY -c "import torch, transformers, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__,
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')" 2>&1 | tee "$OUT/env.log"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv >> "$OUT/env.log" 2>&1
MS="$PY benchmarks/model_speed.py --device $DEVICE --cases $PRESET --precisions bf16"
step engine_tests 70 env R1LAB_TEST_DEVICE="$DEVICE" $PY -m pytest -q -p no:cacheprovider tests/test_engine.py
# SFT, pretraining and sampled evaluation with device=$DEVICE: the CPU run's weights, resumable there
step device_tests 70 env R1LAB_TEST_DEVICE="$DEVICE" $PY -m pytest -q -p no:cacheprovider tests/test_devices.py
# training throughput: the default (grouped GEMMs for the routed experts on Hopper) against
# transformers, with a check against the expert loop and a profile; then every block (and the
# output head's loss) compiled, at 8, 16 and 32 rows of 2048 tokens
step model_speed 90 $MS --profile "$OUT/profile_b8"
step model_speed_compile 120 $MS --no-hf --compile
step model_speed_b16_compile 120 $MS --no-hf --compile --batch 16 --profile "$OUT/profile_b16"
step model_speed_b32_compile 120 $MS --no-hf --compile --batch 32
step grpo 80 $PY benchmarks/grpo_gpu.py --device "$DEVICE" --preset "$PRESET" --steps 5
echo "== done in ${SECONDS}s"
