"""int8 ONNX: an exported graph quantized by ONNX Runtime, checked on the run's own test split.

ONNX Runtime's dynamic quantization stores the weights of the linear layers (MatMul nodes) as int8,
with a scale per output channel, and the embedding tables (Gather nodes) as uint8, and quantizes
each batch's activations as it comes; the attention's MatMuls between two activations stay fp32.
The check scores the fp32 and the int8 graphs on the test split the run was tested on, read and
tokenized as `hfadapt evaluate` reads it, and refuses the int8 graph if its main metric falls more
than INT8_TOLERANCE below the fp32 graph's.

The settings, measured on the README's run (rotten_tomatoes_lora.yaml: MiniLM with LoRA, 1,279 test
texts, accuracy 0.8358 in fp32, scored in 12.0 s on a busy 2-core AVX512-VNNI CPU): signed int8
weights with a scale per output channel score 0.8335 in 5.8 s; one scale per tensor loses 2 points
(0.8163); unsigned int8 weights (QUInt8) score 0.8382 but take 9.8 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfadapt.data import long_texts, splits, tokenization
from hfadapt.data.sources import IN_MEMORY
from hfadapt.errors import HfadaptError
from hfadapt.model import metrics

if TYPE_CHECKING:
    from hfadapt.recipe import Recipe

INT8_TOLERANCE = 0.01  # the most the int8 graph's main metric may fall below the fp32 graph's: 1 point of a 0-1 metric
LOWER_IS_BETTER = ("mse",)  # main metrics that fall as the model gets better
QUANTIZE = ("int8",)  # what export_onnx's `quantize` takes


def refusal(recipe: Recipe, quantize: str) -> str | None:
    """Why this run's export cannot be quantized as asked, or None; asked before any work."""
    if quantize not in QUANTIZE:
        return f"--quantize {quantize!r}: choose {', '.join(QUANTIZE)}"
    if recipe.data.source.startswith(IN_MEMORY):
        return (
            f"--quantize {quantize}: the run's data were given in memory ({recipe.data.source}), so its test split, "
            "on which the int8 model is checked, cannot be read again; export it without --quantize"
        )
    return None


def quantize_int8(fp32: Path, int8: Path) -> None:
    """Write `fp32` (an ONNX file) quantized to int8 weights at `int8`, pre-processed as ONNX Runtime asks."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ready = int8.with_name(int8.stem + ".pre.onnx")
    root = logging.getLogger()
    level = root.level
    try:
        # no symbolic shape inference: it cannot follow the graph's slice of the position ids (Min(max
        # positions, sequence)), and when it fails it leaves its half-done model in the working folder
        quant_pre_process(str(fp32), str(ready), skip_symbolic_shape=True)
        root.setLevel(max(level, logging.WARNING))  # ONNX Runtime logs a line per tensor it leaves in fp32
        quantize_dynamic(ready, int8, per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
        ready.unlink(missing_ok=True)


def check_int8(
    fp32: Path,
    int8: Path,
    names: list[str],
    recipe: Recipe,
    tokenizer,
    label_names: list[str] | None,
    tolerance: float = INT8_TOLERANCE,
) -> dict[str, Any]:
    """Score the fp32 and int8 graphs on the run's test split; refuse the int8 one if it scores too low.

    Args:
        fp32: the exported graph.
        int8: the same, quantized.
        names: the graphs' inputs (`input_ids`, `attention_mask`, maybe `token_type_ids`).
        recipe: the run's recipe: its data section finds the test split, its task the main metric.
        tokenizer: the run's tokenizer.
        label_names: the trained model's labels, in its order (None for regression).
        tolerance: the most the int8 graph's main metric may fall below the fp32 graph's.

    Returns:
        What export.json keeps under `int8`: the file, the metric, both scores, the tolerance, the
        number of test examples, and the seconds each graph took to score them.

    Raises:
        HfadaptError: the int8 graph's score falls more than `tolerance` below the fp32 graph's.
    """
    import onnxruntime

    batches, labels, docs = _test_batches(names, recipe, tokenizer, label_names)
    metric = metrics.main_metric(recipe.task)
    scores, seconds = {}, {}
    for kind, path in (("fp32", fp32), ("int8", int8)):
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        started = time.perf_counter()
        logits = _logits(session, batches, recipe.task.type == "token_classification")
        seconds[kind] = round(time.perf_counter() - started, 3)
        scores[kind] = _score(logits, labels, docs, recipe, label_names)[metric]
    drop = scores["fp32"] - scores["int8"] if metric not in LOWER_IS_BETTER else scores["int8"] - scores["fp32"]
    if not drop <= tolerance:
        raise HfadaptError(
            f"export: --quantize int8: the int8 model scores test {metric} {scores['int8']:.4f} against the fp32 "
            f"model's {scores['fp32']:.4f}, {drop:.4f} worse (at most {tolerance} allowed); nothing is written: "
            "export without --quantize and use the fp32 model.onnx"
        )
    return {
        "file": int8.name,
        "metric": f"test_{metric}",
        "fp32": scores["fp32"],
        "int8": scores["int8"],
        "tolerance": tolerance,
        "examples": len(labels) if docs is None else len(set(docs[0])),  # texts, not windows
        "seconds": seconds,
    }


def _test_batches(names: list[str], recipe: Recipe, tokenizer, label_names: list[str] | None):
    """The test split tokenized as in training, in padded batches of similar lengths (longest first),
    each with the rows it holds; the rows' labels; and the text each row reads, with the word at each
    row's positions for token classification (None unless data.long_texts is windows, where a text
    gives several rows: `long_texts.window_columns`)."""
    import numpy as np

    task_data = splits.load_splits(recipe.data, recipe.task, label_names=label_names)
    test = tokenization.tokenize(task_data, tokenizer, recipe.data, recipe.task)["test"]
    given = [n for n in names if n in test.column_names]  # a graph input the tokenizer does not give is zeros
    columns = {name: list(test[name]) for name in given}
    size = recipe.training.get("per_device_eval_batch_size", 64)
    order = np.argsort([-len(ids) for ids in columns["input_ids"]], kind="stable")
    batches = []
    for start in range(0, len(order), size):
        chosen = order[start : start + size]
        padded = tokenizer.pad({n: [columns[n][i] for i in chosen] for n in given}, return_tensors="np")
        inputs = {n: padded[n].astype(np.int64) if n in given else np.zeros_like(padded["input_ids"]) for n in names}
        batches.append((chosen, inputs))
    docs = long_texts.window_columns(test)
    return batches, list(test["labels"]), docs


def _logits(session, batches, per_token: bool):
    """An ONNX Runtime session's logits for every row, in the rows' order; per token: padded to the longest row."""
    import numpy as np

    rows = {}
    for chosen, inputs in batches:
        out = session.run(["logits"], inputs)[0]
        for j, i in enumerate(chosen):
            rows[int(i)] = out[j][inputs["attention_mask"][j] == 1] if per_token else out[j]
    ordered = [rows[i] for i in range(len(rows))]
    if not per_token:
        return np.stack(ordered)
    longest = max(len(r) for r in ordered)
    logits = np.zeros((len(ordered), longest, ordered[0].shape[-1]), dtype=np.float32)
    for i, row in enumerate(ordered):
        logits[i, : len(row)] = row
    return logits


def _score(logits, labels: list, docs, recipe: Recipe, label_names: list[str] | None) -> dict[str, float]:
    """The metrics of `logits` against `labels` (token labels padded with -100; windows pooled per text)."""
    import numpy as np
    from transformers import EvalPrediction

    if recipe.task.type == "token_classification":
        gold = np.full(logits.shape[:2], -100, dtype=np.int64)
        for i, row in enumerate(labels):
            gold[i, : len(row)] = row
    else:
        gold = np.asarray(labels)
    if docs is not None and docs[1] is not None:  # windows of sentences: per word
        logits, gold = long_texts.pool_word_windows(logits, docs[0], docs[1], gold)
    elif docs is not None:
        logits, gold = long_texts.pool_windows(logits, docs[0], gold)
    return metrics.compute_fn(recipe.task, label_names)(EvalPrediction(predictions=logits, label_ids=gold))
