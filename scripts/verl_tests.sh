#!/usr/bin/env bash
# tests/test_verl.py against the real verl: an overlay venv (.venv-verl, or RM_VERL_VENV) that sees .venv's packages
# through a .pth file and adds requirements/test-verl.txt on top WITHOUT dependency resolution, so the locked
# torch/transformers stay as they are (verl is not in the lock: it pins transformers<5.11). Cached after the first
# install (~25 s). Run by run_tests.sh after the default tier; extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BASE_PY="${VIRTUAL_ENV:-$ROOT/.venv}/bin/python"  # the project's venv (run_tests.sh activates it; RM_VENV may move it)
BASE_SITE="$("$BASE_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
OVERLAY="${RM_VERL_VENV:-$ROOT/.venv-verl}"
STAMP="$OVERLAY/.installed-$( (cat requirements/test-verl.txt; echo "$BASE_SITE") | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  rm -rf "$OVERLAY"
  "$BASE_PY" -m venv "$OVERLAY"
  OVERLAY_SITE="$("$OVERLAY/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$BASE_SITE" > "$OVERLAY_SITE/_rm_base_venv.pth"
  "$OVERLAY/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r requirements/test-verl.txt
  touch "$STAMP"
fi
"$OVERLAY/bin/python" -c "import verl, torch, transformers; print(f'verl {verl.__version__} over torch {torch.__version__}, transformers {transformers.__version__}')"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 exec "$OVERLAY/bin/python" -m pytest -q tests/test_verl.py "$@"
