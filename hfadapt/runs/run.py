"""`Run`: a finished run a caller can hold: its folder, metrics, recipe, model and tokenizer, and what is done with it.

`finetune` and `retrain` return one; `Run.load(run_dir)` (or `load_run`) opens one from its folder.
The model and tokenizer load on first use and are kept, so `run.predict` called batch after batch
costs no reloading.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe
from hfadapt.runs import export, hub, inference, quantization

# retrain's stage reports were keyed by these names before they took their folders' names
_OLD_STAGE_KEYS = {"pretrain": "pretrained", "finetune": "finetuned"}


@dataclass(eq=False, repr=False)
class Run:
    """A finished fine-tuning run.

    Args:
        run_dir: the run's folder (its `output.dir`).
        metrics: what the run's metrics.json holds: `train`, `validation` and `test` metrics, the
            `main_metric`, parameter counts, the data report, the label names, the device, the compute time.
        recipe: the run's resolved recipe.
        stages: for a run made by `retrain`, every stage's report: `tokenizer`, `pretrained`, `finetuned`.

    Returns:
        A `Run`; `run.model` and `run.tokenizer` load on first use (the merged or fully trained model,
        or the LoRA adapter on its base), in eval mode.
    """

    run_dir: Path
    metrics: dict[str, Any]
    recipe: Recipe
    stages: dict[str, Any] | None = None
    _model: Any = field(default=None, init=False)
    _tokenizer: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)

    @classmethod
    def load(cls, run_dir: str | Path) -> Run:
        """Open a finished run from its folder; the model loads on first use.

        Args:
            run_dir: the output folder of a finished run.

        Returns:
            The run, with its metrics and recipe read from the folder.

        Raises:
            HfadaptError: the folder is missing, is not a finished run, or holds an unreadable model.
        """
        run_dir = Path(run_dir)
        recipe = inference.check_run(run_dir)
        saved = run_dir / "metrics.json"
        if not saved.exists():
            raise HfadaptError(
                f"{run_dir} is not a finished hfadapt run (it has no metrics.json); give the output.dir of a run "
                "that completed"
            )
        return cls(run_dir, json.loads(saved.read_text(encoding="utf-8")), recipe)

    @property
    def label_names(self) -> list[str] | None:
        """The labels (tags for token classification) in the model's order; None for regression."""
        return self.metrics.get("label_names")

    @property
    def main_metric(self) -> str:
        """The metric that names the best model (`f1`, `accuracy`, `pearson`, ...), as `metrics["main_metric"]`."""
        return self.metrics["main_metric"]

    @property
    def model(self):
        """The task model (a `PeftModel` for a LoRA run saved without its merged model), loaded once."""
        self._load()
        return self._model

    @property
    def tokenizer(self):
        """The run's tokenizer, loaded once with the model."""
        self._load()
        return self._tokenizer

    def _load(self) -> None:
        if self._model is None:
            self._model, self._tokenizer = inference.load_model(self.run_dir, self.recipe, self.label_names)

    def predict(self, texts, **options) -> list[dict[str, Any]]:
        """Labels and scores for `texts`, with this run's model (loaded once): `hfadapt.predict` on this run.

        Args:
            texts: the texts to label.
            **options: `batch_size`, `progress`, `device`, `all_scores`, as `hfadapt.predict` takes them.

        Returns:
            One dict per text, in the order of `texts` (see `hfadapt.predict`).
        """
        return inference.predict(self, texts, **options)

    def evaluate(
        self, source: Any = None, split: str = "test", *, overrides: list[str] | tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """This run's metrics on a split of a data source, made as in training.

        Args:
            source: a data source (file, folder, Hub id, builtin:NAME), or the data itself (a DataFrame,
                a `datasets.Dataset` or `DatasetDict`, a list of dicts); by default the run's own.
            split: `train`, `validation` or `test`.
            overrides: `key=value` strings for the data section, e.g. `data.encoding=latin-1`.

        Returns:
            The split's metrics, keyed `SPLIT_METRIC`, as `hfadapt.evaluate` gives them.
        """
        return inference.evaluate(self, source, split, overrides=overrides)

    def push(self, repo_id: str, private: bool = False, revision: str | None = None) -> str:
        """Upload this run to the Hugging Face Hub (see `hfadapt.push`).

        Args:
            repo_id: NAME or ORG/NAME; created if missing.
            private: create the repo private.
            revision: push to this branch (created if missing).

        Returns:
            The URL of the commit.
        """
        return hub.push(self.run_dir, repo_id, private=private, revision=revision)

    def export_onnx(
        self,
        output_dir: str | Path | None = None,
        overwrite: bool = False,
        *,
        quantize: str | None = None,
        int8_tolerance: float = quantization.INT8_TOLERANCE,
    ) -> dict[str, Any]:
        """Export this run's model to ONNX, checked against PyTorch (see `hfadapt.export_onnx`).

        Args:
            output_dir: where model.onnx and its tokenizer go; by default RUN_DIR/onnx.
            overwrite: replace an existing `output_dir`.
            quantize: "int8": also write model.int8.onnx, checked on the run's test split.
            int8_tolerance: the most the int8 model's main metric may fall below the fp32 model's.

        Returns:
            What export.json holds: the file, the opset, the inputs, and the checks.
        """
        return export.export_onnx(self.run_dir, output_dir, overwrite, quantize=quantize, int8_tolerance=int8_tolerance)

    def __repr__(self) -> str:
        metric = self.metrics.get("main_metric")
        value = (self.metrics.get("test") or {}).get(f"test_{metric}")
        shown = f", test_{metric}={value:.4f}" if isinstance(value, (int, float)) else ""
        return f"Run({str(self.run_dir)!r}{shown})"

    # One release of deprecation: the dict `finetune` returned and the tuple `load_run` returned.

    def __getitem__(self, key):
        if isinstance(key, int):
            _deprecated("load_run(...)[i]", "run.recipe, run.model, run.tokenizer")
            return (self.recipe, self.model, self.tokenizer)[key]
        if self.stages is not None and (key in self.stages or key in _OLD_STAGE_KEYS):
            stage = _OLD_STAGE_KEYS.get(key, key)
            _deprecated(f"run[{key!r}]", f"run.stages[{stage!r}]")
            return self.stages[stage]
        _deprecated(f"run[{key!r}]", f"run.metrics[{key!r}]")
        return self.metrics[key]

    def __contains__(self, key) -> bool:
        _deprecated(f"{key!r} in run", f"{key!r} in run.metrics")
        return key in self.metrics or (self.stages is not None and _OLD_STAGE_KEYS.get(key, key) in self.stages)

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: `run.metrics.get(key, default)`.

        Args:
            key: a key of metrics.json.
            default: the value when it is missing.

        Returns:
            `run.metrics.get(key, default)`.
        """
        _deprecated(f"run.get({key!r})", f"run.metrics.get({key!r})")
        return self.metrics.get(key, default)

    def __iter__(self):
        _deprecated("recipe, model, tokenizer = load_run(run_dir)", "run.recipe, run.model, run.tokenizer")
        return iter((self.recipe, self.model, self.tokenizer))


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; write {new} (a Run holds the folder, "
        "metrics, recipe, model and tokenizer)",
        DeprecationWarning,
        stacklevel=3,
    )


def load_run(run_dir: str | Path) -> Run:
    """Open a finished run from its folder: `Run.load(run_dir)`.

    Args:
        run_dir: the output folder of a finished run.

    Returns:
        The `Run`; its model and tokenizer load on first use.

    Raises:
        HfadaptError: the folder is missing, is not a finished run, or holds an unreadable model.
    """
    return Run.load(run_dir)
