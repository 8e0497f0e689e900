#!/usr/bin/env bash
# The GPU check of issue 11, in one command, within 8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh --prepare     # CPU side, once: a 240-clip cache in benchmarks/gpu_cache (~40 MB)
#   bash benchmarks/gpu_check.sh               # on the GPU machine; results in docs/results/gpu/
#   bash benchmarks/gpu_check.sh --dry-run     # the same steps on the CPU, tiny sizes, results in a temp folder
#
# Steps (each under its own time limit; a failing step is recorded and the next one runs):
#   1. environment: nvidia-smi, torch, CUDA, spconv;
#   2. equivalence: dense / gather / auto / spconv (when installed) equal the masked reference on CUDA,
#      blocks and whole models (mesm_small, mesm_iemocap), logits and gradients, float32 tolerance (TF32 off);
#   3. the sparse-block table on CUDA (forward and forward+backward, paper and small blocks), and the CUDA
#      crossovers auto reads (merged into mesm_core/models/sparse/crossovers.json);
#   4. training clips/s and peak GPU memory of fe2e_iemocap and mesm_iemocap (MiniLM-size text) and the
#      small presets, bf16 AMP, from the cache with 8 loader workers, at the presets' batch size and at 64,
#      with a profile of where a step's time goes;
#   5. torchrun with 1 process on NCCL: a DDP run (benchmarks/ddp_check.py) and the training CLI.
# With $OUT set (the device tool), everything written is also packed into $OUT/gpu_check_results.tgz.
# benchmarks/gpu_cache is git-ignored: with the project's device tool, carry it:
#   run(command="bash benchmarks/gpu_check.sh", carry=["benchmarks/gpu_cache"], timeout_s=540)
# then unpack the .tgz at the repository root and commit docs/results/gpu/ and crossovers.json, naming the GPU.
# Python: $PYTHON, else python3. spconv: installed from .whl/*.whl when that folder exists (wheels for the
# GPU machine's Python); otherwise its CUDA check is skipped and the results say so.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
CACHE=benchmarks/gpu_cache
MODE=gpu
case "${1:-}" in
  --prepare)
    SOURCE="${2:-data/synthetic_cache}"
    [ -f "$SOURCE/manifest.jsonl" ] || { echo "no cache at $SOURCE (make one: python -m mesm_core.preprocess --dataset synthetic ...)"; exit 1; }
    rm -rf "$CACHE"
    exec "$PY" benchmarks/train_throughput.py --cache "$SOURCE" --subset "$CACHE" --clips 240 ;;
  --dry-run) MODE=dry ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--prepare [CACHE] | --dry-run]"; exit 2 ;;
esac

if [ "$MODE" = gpu ]; then
  RESULTS=docs/results/gpu; DEVICE=cuda
  [ -f "$CACHE/manifest.jsonl" ] || { echo "no $CACHE: run 'bash benchmarks/gpu_check.sh --prepare' on the CPU side first"; exit 1; }
else
  RESULTS="$(mktemp -d)/gpu_check_dry"; DEVICE=cpu
  [ -f "$CACHE/manifest.jsonl" ] || CACHE=data/synthetic_cache
fi
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
STATUS="$RESULTS/steps.txt"
: >"$STATUS"
: >"$LOG"
START=$(date +%s)

# On the GPU the whole check stays under 8 minutes: each step's limit is cut to what is left of 465 s.
if [ "$MODE" = gpu ]; then BUDGET=${GPU_CHECK_BUDGET_S:-465}; else BUDGET=${GPU_CHECK_BUDGET_S:-3600}; fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, record the exit status
  local name=$1 limit=$2; shift 2
  local left=$((START + BUDGET - $(date +%s)))
  if [ "$left" -lt 20 ]; then echo "$name: skipped (out of time)" | tee -a "$STATUS" "$LOG"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name ($(($(date +%s) - START)) s elapsed, limit ${limit} s): $*" | tee -a "$LOG"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "$name: exit $rc" | tee -a "$STATUS" "$LOG"
}

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  step wheels 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

step environment 60 bash -c "nvidia-smi -L 2>/dev/null || echo 'nvidia-smi: not available'; $PY -c '
import torch, importlib.util, platform
print(\"python\", platform.python_version(), \"torch\", torch.__version__, \"cuda\", torch.version.cuda,
      \"gpu\", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
      \"spconv\", importlib.util.find_spec(\"spconv\") is not None)'" 

if [ "$MODE" = gpu ]; then
  step equivalence 150 "$PY" benchmarks/gpu_equivalence.py --device cuda --full --json "$RESULTS/equivalence.json"
  step sparse_blocks 150 "$PY" benchmarks/sparse_blocks.py --device cuda --threads 0 --repeats 15 \
    --out sparse_blocks_cuda --out-dir "$RESULTS"
  step calibration 90 "$PY" benchmarks/sparse_blocks.py --device cuda --threads 0 --repeats 9 --calibrate --write-table \
    --out sparse_blocks_calibration_cuda --out-dir "$RESULTS"
  step throughput 210 "$PY" benchmarks/train_throughput.py --device cuda --cache "$CACHE" --workers 8 --steps 30 --warmup 5 \
    --presets fe2e_iemocap,mesm_iemocap,fe2e_small,mesm_small --profile --out train_throughput_cuda --out-dir "$RESULTS"
  step throughput_b64 120 "$PY" benchmarks/train_throughput.py --device cuda --cache "$CACHE" --workers 8 --steps 20 --warmup 3 \
    --presets fe2e_iemocap,mesm_iemocap --batch-size 64 --profile --out train_throughput_cuda_b64 --out-dir "$RESULTS"
  step throughput_memory 90 "$PY" benchmarks/train_throughput.py --device cuda --cache "$CACHE" --data memory --steps 20 \
    --warmup 3 --presets fe2e_iemocap --batch-size 64 --out train_throughput_cuda_memory --out-dir "$RESULTS"
  step ddp_nccl 90 "$PY" -m torch.distributed.run --nproc_per_node 1 benchmarks/ddp_check.py --cache "$CACHE" \
    --device cuda --json "$RESULTS/ddp_nccl.json"
  step train_cli_torchrun 90 "$PY" -m torch.distributed.run --nproc_per_node 1 -m mesm_core.train --preset mesm_small \
    --data "$CACHE" --out /tmp/gpu_check_run --device cuda --epochs 1 --max-steps 5 --random-text-weights --no-progress --no-test
else
  step equivalence 300 "$PY" benchmarks/gpu_equivalence.py --device cpu --json "$RESULTS/equivalence.json"
  step sparse_blocks 300 "$PY" benchmarks/sparse_blocks.py --device cpu --threads 1 --presets mesm_small --modes forward,backward \
    --fractions 0.3,1.0 --repeats 1 --out sparse_blocks_dry --out-dir "$RESULTS"
  step throughput 300 "$PY" benchmarks/train_throughput.py --device cpu --cache "$CACHE" --workers 1 --steps 1 --warmup 1 \
    --presets fe2e_small,mesm_small --profile --out train_throughput_dry --out-dir "$RESULTS"
  step ddp_gloo 300 "$PY" -m torch.distributed.run --nproc_per_node 1 benchmarks/ddp_check.py --cache "$CACHE" \
    --device cpu --preset mesm_small --steps 1 --batch-size 2 --json "$RESULTS/ddp_gloo.json"
fi

echo "total $(($(date +%s) - START)) s; results in $RESULTS" | tee -a "$LOG"
cat "$STATUS"
if [ -n "${OUT:-}" ] && [ -d "${OUT}" ]; then
  tar czf "$OUT/gpu_check_results.tgz" "$RESULTS" mesm_core/models/sparse/crossovers.json
  cp "$LOG" "$OUT/" 2>/dev/null || true
fi
! grep -qv ": exit 0$" "$STATUS"
