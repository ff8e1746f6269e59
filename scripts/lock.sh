#!/usr/bin/env bash
# Refresh requirements/lock.txt: the exact versions that scripts/setup_env.sh and CI install.
#   bash scripts/lock.sh            # newest versions the ranges in requirements/*.txt allow
# Then run the tests (`bash run_tests.sh`) before committing the new lock, and raise an upper
# bound in requirements/*.txt only to a version the tests have passed on.
# The lock is for CPython 3.11 on x86_64 Linux (the CI machine); torch is pinned to TORCH_VERSION
# without a local build label, so pip takes the CPU wheel where one is offered and PyPI's build elsewhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
command -v uv >/dev/null || python3 -m pip install -q uv
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "torch==$TORCH_VERSION" > "$tmp/torch.in"
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)
uv pip compile "$ROOT/requirements/dev.txt" "$tmp/torch.in" "${links[@]}" \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --no-header --no-annotate --quiet -o "$tmp/lock.txt"
{
  echo "# Exact versions installed by scripts/setup_env.sh and CI. Refresh with: bash scripts/lock.sh"
  echo "# (uv pip compile of requirements/dev.txt + torch==$TORCH_VERSION, CPython 3.11, x86_64 Linux)"
  sed -E 's/^(torch==[^+]+)\+[a-z0-9.]+$/\1/' "$tmp/lock.txt"
} > "$ROOT/requirements/lock.txt"
echo "wrote requirements/lock.txt ($(grep -c '^[A-Za-z0-9].*==' "$ROOT/requirements/lock.txt") packages)"
