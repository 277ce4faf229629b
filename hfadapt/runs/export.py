"""Export a finished run to ONNX, checked: ONNX Runtime must give the logits PyTorch gives.

optimum's ONNX exporter (optimum-onnx) requires transformers below 4.58, so the model goes through
PyTorch's own exporter (`torch.onnx.export`, TorchScript-based, batch and sequence length dynamic).
Before anything is written, the exported graph is run by ONNX Runtime on batches of random token
ids of several lengths, and its logits must equal the PyTorch model's within TOLERANCE. With
`quantize="int8"` the checked graph is also quantized to int8 (model.int8.onnx), and that one is
checked on the run's own test split (runs/quantization.py). The folder (model.onnx, tokenizer,
config, export.json with the checks) is written as DIR.incomplete and moved into place when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfadapt.errors import HfadaptError
from hfadapt.runs import inference, output, quantization

if TYPE_CHECKING:
    from hfadapt.runs.run import Run

TOLERANCE = 1e-4  # the largest absolute difference of a logit allowed between ONNX Runtime and PyTorch
OPSET = 17


def export_onnx(
    run_dir: str | Path | Run,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    *,
    quantize: str | None = None,
    int8_tolerance: float = quantization.INT8_TOLERANCE,
) -> dict[str, Any]:
    """Export a finished run's model (LoRA merged into its base) to ONNX and check it against PyTorch.

    The model is loaded afresh from the run's folder, so merging LoRA leaves a `Run`'s own model as it was.

    Args:
        run_dir: the output folder of a finished run, or a `Run`.
        output_dir: where model.onnx and its tokenizer go; by default RUN_DIR/onnx.
        overwrite: replace an existing `output_dir`.
        quantize: "int8": also write model.int8.onnx, its weights quantized to int8 by ONNX Runtime,
            once it scores the run's test split within `int8_tolerance` of model.onnx. Not for a run
            whose data were given in memory (its test split cannot be read again).
        int8_tolerance: the most the int8 model's main metric may fall below the fp32 model's
            (0.01: 1 point of a 0-1 metric).

    Returns:
        What export.json holds: the file, the opset, the inputs, and the check (the largest
        logit difference on each batch shape); with `quantize`, under `int8`: its file, the test
        metric, the fp32 and int8 scores, the tolerance, the number of test examples, and the
        seconds each model took to score them.

    Raises:
        HfadaptError: the run cannot be loaded, onnx or onnxruntime is missing, `quantize` is not
            "int8" or the run's data were given in memory, or a check fails (then nothing is written).
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise HfadaptError(
            "export: ONNX export needs onnx and onnxruntime; pip install 'hfadapt[onnx]' (or pip install onnx "
            "onnxruntime)"
        ) from None
    run_dir = Path(getattr(run_dir, "run_dir", run_dir))
    final = Path(output_dir) if output_dir is not None else run_dir / "onnx"
    blocking = next((p for p in (final, *final.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        what = "is a file" if blocking == final else f"is under {blocking}, which is a file"
        raise HfadaptError(f"export: --output {final} {what}; give a folder, where model.onnx and its tokenizer go")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise HfadaptError(
            f"export: {final} already holds files; choose another --output, or replace it with --overwrite"
        )
    if quantize is not None:
        refused = quantization.refusal(inference.check_run(run_dir), quantize)
        if refused:
            raise HfadaptError(f"export: {refused}")
    output.check(final, overwrite=True)
    recipe, model, tokenizer = inference.load_folder(run_dir)
    if hasattr(model, "merge_and_unload"):  # a LoRA run saved without its merged model
        model = model.merge_and_unload()
    model.eval()
    names = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    with output.lock(final):
        work = output.start(final)
        try:
            _export(model, names, recipe.task.type, work / "model.onnx")
            check = _check(model, names, work / "model.onnx", tokenizer)
            info = {"file": "model.onnx", "opset": OPSET, "inputs": names, "task": recipe.task.type, "check": check}
            if quantize is not None:
                quantization.quantize_int8(work / "model.onnx", work / "model.int8.onnx")
                labels = (
                    [model.config.id2label[i] for i in range(model.config.num_labels)]
                    if recipe.task.problem_type != "regression"
                    else None
                )
                info["int8"] = quantization.check_int8(
                    work / "model.onnx", work / "model.int8.onnx", names, recipe, tokenizer, labels, int8_tolerance
                )
            tokenizer.save_pretrained(work)
            model.config.save_pretrained(work)
            (work / "export.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        output.finish(work, final)
    return info


def _export(model, names: list[str], task: str, path: Path) -> None:
    import warnings

    import torch

    example = {name: torch.ones((2, 8), dtype=torch.long) for name in names}
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["logits"] = {0: "batch", 1: "sequence"} if task == "token_classification" else {0: "batch"}

    class Logits(torch.nn.Module):  # the model's logits alone, from inputs given by name
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs, strict=True))).logits

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on how it lowers indexing
        torch.onnx.export(
            Logits(model).eval(),  # no dropout in the graph
            tuple(example[name] for name in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _check(model, names: list[str], path: Path, tokenizer) -> list[dict[str, Any]]:
    """ONNX Runtime's logits against PyTorch's on random token ids, padded, at several shapes."""
    import numpy as np
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    limit = min(getattr(model.config, "max_position_embeddings", 512), 512)
    results = []
    for batch, length in ((1, 5), (3, 17), (8, min(64, limit))):
        ids = torch.randint(len(tokenizer), (batch, length), generator=generator)
        mask = torch.ones_like(ids)
        mask[0, length // 2 :] = 0  # a padded row
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        inputs = {name: inputs[name] for name in names}
        with torch.no_grad():
            expected = model(**inputs).logits.numpy()
        got = session.run(["logits"], {name: value.numpy() for name, value in inputs.items()})[0]
        difference = float(np.abs(got - expected).max())
        results.append({"batch": batch, "length": length, "max_abs_difference": difference})
        if not difference <= TOLERANCE:
            raise HfadaptError(
                f"export: ONNX Runtime's logits differ from PyTorch's by {difference:.2e} (batch {batch}, length "
                f"{length}; at most {TOLERANCE:.0e} allowed); the exported model is not written"
            )
    return results
