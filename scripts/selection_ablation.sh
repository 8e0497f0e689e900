#!/usr/bin/env bash
# The exact command behind docs/results/selection_ablation.{md,json}: the slider recipe of mesm_small (the demo's
# run, seed 0), the paper's rule, the previous recipe, an FE2E control fine-tuned for the same 6 epochs, and the
# slider recipe with one piece left out per row, on the seed-0 synthetic set, warm-started from the committed FE2E
# demo checkpoint. CPU only, single-threaded runs, two at a time; a 6-epoch run took 14-25 minutes on the shared
# 2-core development machine (metrics.jsonl of each run), so the rows below take about 1.5 hours of wall time.
# Resumable: rerunning skips the runs that already have a result.json.
#   bash scripts/selection_ablation.sh
#   bash scripts/selection_ablation.sh --seeds 0,1 --variants all   # every row of mesm_core/ablation.py, two seeds
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
if [ ! -f data/synthetic_cache/cache.json ]; then
  $PY -m mesm_core.preprocess --dataset synthetic --source data/synthetic --out data/synthetic_cache --workers 2 \
      --seed 0 --n-clips 1200 --no-progress
fi
VARIANTS=${VARIANTS:-"fe2e+;paper;previous;slider;slider − sampling;slider − bn_regimes;slider − keep_ratio;slider − teacher_saliency;slider − distill;slider − posterior_query;slider − safety_floor;slider − context_scorer"}
$PY -m mesm_core.ablation --data data/synthetic_cache --fe2e assets/checkpoints/fe2e_small --out runs/ablation \
    --seeds 0 --jobs 2 --variants "$VARIANTS" --report docs/results/selection_ablation.md "$@"
