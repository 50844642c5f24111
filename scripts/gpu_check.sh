#!/usr/bin/env bash
# The GPU acceptance run as one command (README: "Checking on a GPU"); arguments go to scripts/gpu_check.py.
# Uses $PYTHON if set, else .venv/bin/python where there is one, else python3 (a bare GPU machine's Python with torch).
# Where that Python lacks BasicSR, it is taken from .gpu_site/, made beforehand on a machine with the project's venv:
#   .venv/bin/python scripts/gpu_check.py --vendor .gpu_site
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_site ]; then export PYTHONPATH="$PYTHONPATH:$ROOT/.gpu_site"; fi
export PYTHONUNBUFFERED=1
if ! "$PY" -c 'import deblurzoo' >/dev/null; then
    echo "gpu_check.sh: '$PY' cannot import deblurzoo (see the error above); where BasicSR is missing, make" \
         ".gpu_site/ first (.venv/bin/python scripts/gpu_check.py --vendor .gpu_site) and carry it along" >&2
    exit 1
fi
"$PY" -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())'
exec "$PY" scripts/gpu_check.py "$@"
