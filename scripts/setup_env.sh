#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment at <repo>/.venv and install deblurzoo into it.
# Order matters: the pinned torch/torchvision builds first, then basicsr (its setup.py imports torch, so it is built
# without isolation against the torch already installed), then this package with its extras. Idempotent: a second run
# only checks that everything imports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
BASICSR_PIN="basicsr==1.4.2"

quiet_pip() {  # pip without the mirror's noise, but with its errors; returns pip's own exit status
  local status
  set +e
  "$PY" -m pip install --disable-pip-version-check "$@" 2>&1 \
    | grep -v -E "is ignored: it is neither|^Requirement already satisfied|^\s*$"
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}

if [ ! -x "$PY" ]; then
  echo "[setup] creating virtual environment at $VENV"
  python3 -m venv "$VENV"
fi

if ! "$PY" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')" 2>/dev/null; then
  echo "[setup] installing $TORCH_PIN $TORCHVISION_PIN (first time: a few minutes)"
  quiet_pip "$TORCH_PIN" "$TORCHVISION_PIN"
fi
if ! "$PY" -c "import importlib.metadata as m; assert m.version('basicsr') == '1.4.2'" 2>/dev/null; then
  echo "[setup] installing $BASICSR_PIN"
  quiet_pip --no-build-isolation "$BASICSR_PIN"
fi
# deblurzoo_autoload in sys.modules at start-up: the deblurzoo-autoload.pth hook (BasicSR's own scripts find deblurzoo)
# is installed; an environment made before the hook existed gets it by this reinstall
if ! "$PY" -c "import deblurzoo, pytest, skimage, onnx, onnxruntime; import importlib.util as u; assert u.find_spec('skvideo')" 2>/dev/null \
    || ! "$PY" -c "import sys; assert 'deblurzoo_autoload' in sys.modules" 2>/dev/null \
    || [ ! -x "$VENV/bin/deblurzoo-infer" ]; then
  echo "[setup] installing deblurzoo (editable) with its demo and test extras"
  quiet_pip --no-build-isolation -e "$ROOT[demo,test]" "$TORCH_PIN" "$TORCHVISION_PIN"
fi
"$PY" -c "import deblurzoo, torch; print(f'[setup] ready: deblurzoo {deblurzoo.__version__}, torch {torch.__version__}')"
