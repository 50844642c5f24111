#!/usr/bin/env bash
# Set up (or reuse) .venv, then run the whole test suite on CPU. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}"  # tests are CPU tests, also on a machine with a GPU
exec "$ROOT/.venv/bin/python" -m pytest -q "$@"
