#!/usr/bin/env bash
# The test command: installs what it needs, then runs the default tier, the verl tests on the real verl, and the
# slow real-model and distributed tests.
# Extra arguments go to pytest, e.g. `bash run_tests.sh -m distributed`.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi
# Two pytest-xdist workers: the test modules pin torch to one thread (two shared cores), so two workers use both.
# --dist loadfile: a module's tests share one worker, so its module-scoped fixtures (tiny models, every README
# command's --help, the distributed runs) are built once, not once per worker.
PARALLEL=(-n 2 --dist loadfile)
export OMP_NUM_THREADS=1  # and one thread in every process the tests start, so two workers never oversubscribe
python -m pytest -q "${PARALLEL[@]}" -m "not slow and not distributed and not gpu and not labelstudio"
bash scripts/verl_tests.sh  # the verl adapters against the real verl, in an overlay venv (requirements/test-verl.txt)
bash scripts/label_studio_tests.sh  # rm-annotate through a real Label Studio server (its own venv)
# `heavy` tests (the ZeRO-3 offload run, MiniLM learning) are left out to keep CI well under 30 min: -m heavy runs them
python -m pytest -q "${PARALLEL[@]}" -m "(slow or distributed) and not heavy" --durations=12  # the slowest: CI must stay well under 30 min
