#!/usr/bin/env bash
# tests/test_label_studio.py against a real Label Studio: rm-annotate's tasks and labelling config go into a running
# server through label-studio-sdk (tests/label_studio_client.py), annotations are posted, Label Studio's own JSON export comes back through
# rm-annotate import. The server runs from its own venv (.venv-labelstudio, or RM_LABEL_STUDIO_VENV), built from
# requirements/test-labelstudio.txt without dependency resolution and cached by the list's hash; the test itself
# runs in the project's venv. Run by run_tests.sh; extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BASE_PY="${VIRTUAL_ENV:-$ROOT/.venv}/bin/python"  # the project's venv (run_tests.sh activates it; RM_VENV may move it)
LS_VENV="${RM_LABEL_STUDIO_VENV:-$ROOT/.venv-labelstudio}"
STAMP="$LS_VENV/.installed-$(sha256sum requirements/test-labelstudio.txt | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  rm -rf "$LS_VENV"
  "$BASE_PY" -m venv "$LS_VENV"
  # uv when the machine has it (seconds for ~160 packages), else pip (a minute or two)
  if command -v uv >/dev/null; then
    uv pip install -q --python "$LS_VENV/bin/python" --no-deps -r requirements/test-labelstudio.txt
  else
    "$LS_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r requirements/test-labelstudio.txt
  fi
  touch "$STAMP"
fi
RM_LABEL_STUDIO="$LS_VENV/bin/label-studio" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  exec "$BASE_PY" -m pytest -q -m labelstudio tests/test_label_studio.py "$@"
