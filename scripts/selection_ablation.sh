#!/usr/bin/env bash
# The exact command behind docs/results/selection_ablation.{md,json}: every selection-training variant of
# mesm_core/ablation.py with two seeds, on the seed-0 synthetic set, warm-started from the committed FE2E demo
# checkpoint. CPU only, single-threaded runs, two at a time: 173 run-minutes of training were recorded on the shared
# 2-core development machine (result.json files; some runs resumed after an interruption), so about 1.5 hours of wall time.
# Resumable: rerunning skips the runs that already have a result.json.
#   bash scripts/selection_ablation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
if [ ! -f data/synthetic_cache/cache.json ]; then
  $PY -m mesm_core.preprocess --dataset synthetic --source data/synthetic --out data/synthetic_cache --workers 2 \
      --seed 0 --n-clips 1200 --no-progress
fi
$PY -m mesm_core.ablation --data data/synthetic_cache --fe2e assets/checkpoints/fe2e_small --out runs/ablation \
    --seeds 0,1 --jobs 2 --report docs/results/selection_ablation.md "$@"
