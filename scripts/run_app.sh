#!/usr/bin/env bash
# Set up .venv if needed and start the attention studio on the bundled demo checkpoint and sample clips.
# Usage: bash scripts/run_app.sh [app.py flags, e.g. --port 7861]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh offline
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python app.py "$@"
