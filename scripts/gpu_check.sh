#!/usr/bin/env bash
# Train the two Rotten Tomatoes recipes for 100 steps on this machine's GPU in bf16 and print
# each run's training throughput. On a machine without a GPU it says so and exits 0.
#   bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "no GPU on this machine: nothing to check"
    exit 0
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    # scripts/setup.sh installs the CPU build of torch
    echo "nvidia-smi lists a GPU but torch in .venv cannot use it: install a CUDA build of torch into .venv" >&2
    exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
nvidia-smi -L
for name in rotten_tomatoes_lora rotten_tomatoes_full; do
    .venv/bin/hfadapt finetune "recipes/$name.yaml" data.max_train_samples=2000 training.max_steps=100 \
        training.bf16=true training.disable_tqdm=true "output.dir=$TMP/$name"
    "$PY" -c "import json, sys; m = json.load(open(sys.argv[2]))['train']; print(f\"{sys.argv[1]}: {m['train_samples_per_second']:.1f} train samples/s (bf16, 100 steps)\")" \
        "$name" "$TMP/$name/metrics.json"
done
