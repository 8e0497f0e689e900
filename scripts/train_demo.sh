#!/usr/bin/env bash
# The exact commands that produced assets/checkpoints/{fe2e_small,mesm_small} (see their README.md).
# CPU only, single-threaded runs. Run from anywhere:
#   bash scripts/train_demo.sh            # data + MESM (warm start from the committed FE2E) + evaluation + cards
#   TRAIN_FE2E=1 bash scripts/train_demo.sh   # also retrain FE2E first (about 20 minutes) and start MESM from it
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
# Single-threaded torch: the small models run several times faster without OpenMP contention on a busy CPU.
export OMP_NUM_THREADS=1
RUNS=${RUNS:-runs/demo}
# Shared by both models: batch 8, per-step cosine decay, no early stopping, gradient clipping at norm 1.
COMMON=(--set train.batch_size=8 --set train.scheduler=cosine --set train.early_stop=0 --set train.clip_grad_norm=1.0
        --seed 0 --device cpu --no-progress)

# 1. The synthetic dataset (seed 0, 1,200 clips: train 840 / valid 120 / test 240) and its cache.
$PY -m mesm_core.preprocess --dataset synthetic --source data/synthetic --out data/synthetic_cache --workers 2 \
    --seed 0 --n-clips 1200 --no-progress

# 2. FE2E from scratch: 12 epochs at lr 1e-3 (about 20 minutes). The committed fe2e_small came from this command.
FE2E=assets/checkpoints/fe2e_small
if [ "${TRAIN_FE2E:-0}" = 1 ]; then
  $PY -m mesm_core.train --preset fe2e_small --data data/synthetic_cache --out "$RUNS/fe2e_small" --epochs 12 \
      --set train.lr=0.001 "${COMMON[@]}"
  FE2E="$RUNS/fe2e_small/best"
fi

# 3. MESM: warm start from FE2E, then 6 epochs of the mesm_small slider recipe at lr 3e-4 (presets.py; docs/training.md
#    "Training the selection"): p drawn per step from [0.2, 1], BN statistics and thresholds per p, the keep-ratio
#    budget, FE2E as the teacher of the saliency target and of the logits (its targets computed once), deployed at
#    p = 0.7. The same run is the `slider` row of the selection ablation with seed 0 (scripts/selection_ablation.sh).
$PY -m mesm_core.train --preset mesm_small --data data/synthetic_cache --out "$RUNS/mesm_small" --epochs 6 \
    --set train.lr=0.0003 --init-from "$FE2E" --distill-from "$FE2E" "${COMMON[@]}"

# 4. Evaluate on the synthetic test split with the checkpoints' thresholds (MESM: chosen on validation at each p):
#    metrics, FLOPs, the top-p sweep against FE2E (paired bootstrap), what each block kept, attention on cues; then
#    draw the sweep and cue figures from the evaluation JSON (mesm_viz draws, core writes numbers).
mkdir -p "$RUNS/fe2e_small"
$PY -m mesm_core.evaluate --checkpoint "$FE2E" --data data/synthetic_cache --split test \
    --out "$RUNS/fe2e_small/evaluation.json"
$PY -m mesm_core.evaluate --checkpoint "$RUNS/mesm_small/best" --data data/synthetic_cache --split test \
    --top-p 0.1,0.2,...,1.0 --sweep-thresholds checkpoint --fe2e-checkpoint "$FE2E" --out "$RUNS/mesm_small/evaluation.json"
$PY -m mesm_viz.evaluation_figures "$RUNS/mesm_small/evaluation.json" --figure "$RUNS/mesm_small/topp_sweep.html" \
    --cue-figure "$RUNS/mesm_small/attention_on_cues.html"

# 5. Copy into assets/ (the frozen MiniLM text encoder is stored by reference, so each folder is a few MB).
dest=assets/checkpoints/mesm_small
cp "$RUNS/mesm_small/best/model.safetensors" "$RUNS/mesm_small/best/config.json" "$RUNS/mesm_small/metrics.jsonl" \
   "$RUNS/mesm_small/evaluation.json" "$RUNS/mesm_small/topp_sweep.html" "$RUNS/mesm_small/attention_on_cues.html" "$dest/"
if [ "${TRAIN_FE2E:-0}" = 1 ]; then
  cp "$RUNS/fe2e_small/best/model.safetensors" "$RUNS/fe2e_small/best/config.json" "$RUNS/fe2e_small/metrics.jsonl" \
     assets/checkpoints/fe2e_small/
fi
cp "$RUNS/fe2e_small/evaluation.json" assets/checkpoints/fe2e_small/

# 6. Model cards (README.md) from config.json, metrics.jsonl and evaluation.json (mesm_core/model_card.py); the
#    hand-written notes below "## Notes" are kept.
$PY -m mesm_core.model_card assets/checkpoints/fe2e_small assets/checkpoints/mesm_small \
    --command "bash scripts/train_demo.sh" --fe2e assets/checkpoints/fe2e_small
