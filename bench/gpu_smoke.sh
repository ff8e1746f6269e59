#!/usr/bin/env bash
# GPU smoke of every family's GPU config (see bench/gpu_smoke.py): bash bench/gpu_smoke.sh [--only NAME ...]
# On a machine without a CUDA GPU it says so and exits 0. Uses the project's venv when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
exec "$PY" -m bench.gpu_smoke "$@"
