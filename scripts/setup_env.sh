#!/usr/bin/env bash
# Create a virtual environment (once) and install the project into it. Sourced by quickstart.sh and run_tests.sh.
# Needs only python3.11 (or newer) and pip.
#   default        .venv from requirements/lock.txt: the exact versions the tests passed on (CI does this)
#   RM_DEPS=latest .venv-latest with the newest versions requirements/*.txt allow, to find drift on purpose
# RM_VENV overrides the folder. Refresh the lock with `bash scripts/lock.sh`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
case "${RM_DEPS:-lock}" in
  lock)   VENV="${RM_VENV:-$ROOT/.venv}";        inputs=("$ROOT/requirements/lock.txt") ;;
  latest) VENV="${RM_VENV:-$ROOT/.venv-latest}"; inputs=("$ROOT/requirements/"*.txt) ;;
  *) echo "RM_DEPS must be 'lock' or 'latest', not '$RM_DEPS'" >&2; exit 2 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-${RM_DEPS:-lock}-$(cat "$ROOT/pyproject.toml" "${inputs[@]}" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  pip_q() { "$VENV/bin/python" -m pip install -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
  if [ "${RM_DEPS:-lock}" = lock ]; then
    pip_q -r "$ROOT/requirements/lock.txt"
    pip_q --no-deps -e "$ROOT"
    # the venv holds exactly the lock: fail loudly if pip could not honour a pin
    "$VENV/bin/python" "$ROOT/scripts/check_lock.py" "$ROOT/requirements/lock.txt" || { echo "install does not match requirements/lock.txt" >&2; exit 1; }
  else
    # torch first, pinned to a version that has a CPU wheel: a free choice lets pip pick a multi-GB CUDA build.
    "$VENV/bin/python" -c "import torch" 2>/dev/null || pip_q "${TORCH_SPEC:-torch==2.13.0}"
    pip_q --upgrade --upgrade-strategy eager -r "$ROOT/requirements/dev.txt" -e "$ROOT"
    "$VENV/bin/python" -m pip freeze --exclude-editable > "$VENV/versions.txt"
    echo "RM_DEPS=latest: installed versions in $VENV/versions.txt (diff against requirements/lock.txt)"
  fi
  "$VENV/bin/python" -c "import torch, transformers, trl, peft, accelerate, datasets" || { echo "install failed" >&2; exit 1; }
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"  # as `activate` does: scripts/verl_tests.sh and label_studio_tests.sh build on this venv
export TOKENIZERS_PARALLELISM=false
