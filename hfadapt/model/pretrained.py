"""The pretrained checkpoint: resolve it, load its config, tokenizer and task model, and find its parts.

The embeddings and encoder layers are found from the model itself (the module that owns the
input embeddings; the module list as long as `num_hidden_layers`), so BERT, RoBERTa, DistilBERT,
ELECTRA, XLM-R and MiniLM all work without a table of attribute names.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hfadapt import builtin
from hfadapt.errors import HfadaptError
from hfadapt.recipe import ModelConfig, TaskConfig

logger = logging.getLogger(__name__)


def resolve(name_or_path: str) -> str:
    """The local folder or Hub id that `from_pretrained` should read."""
    if builtin.is_builtin(name_or_path):
        return str(builtin.checkpoint_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise HfadaptError(
                f"model.name_or_path: {name_or_path} is not a checkpoint folder (it has no "
                "config.json); give a folder saved with save_pretrained, or a Hub model id"
            )
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise HfadaptError(
            f"model.name_or_path: {name_or_path} does not exist; give a checkpoint folder, a "
            "Hub model id, or builtin:minilm"
        )
    return name_or_path


WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def check_folder(name_or_path: str, what: str = "model.name_or_path") -> None:
    """A local checkpoint folder has readable weights and a tokenizer; Hub ids are checked as they load."""
    path = Path(resolve(name_or_path))
    if not path.is_dir():
        return
    if not any((path / name).is_file() for name in WEIGHTS):
        raise HfadaptError(
            f"{what}: {path} has no weights ({' or '.join(WEIGHTS[::2])}); give a folder saved with "
            "save_pretrained, with its weights"
        )
    check_readable(path, what)
    check_shapes(path, what)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise HfadaptError(
            f"{what}: {path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); save the tokenizer "
            "beside the model (tokenizer.save_pretrained(FOLDER))"
        )


def check_readable(folder: Path, what: str) -> None:
    """Every safetensors file in `folder` opens: none is cut off or corrupt."""
    from safetensors import safe_open

    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(file), "pt") as weights:
                weights.keys()
        except Exception as e:  # safetensors raises its own error type for a cut-off or corrupt file
            raise HfadaptError(
                f"{what}: {file} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                "the file is cut off or corrupt: save or copy the checkpoint again"
            ) from None


def safetensors_header(file: str | Path) -> dict[str, Any]:
    """The header of a safetensors file, read without loading a weight: each tensor's dtype, shape and byte range.

    Raises:
        ValueError: the file is shorter than its header says (cut off), or its header cannot be read.
    """
    file = Path(file)
    size = file.stat().st_size
    with file.open("rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if not 0 < length <= size - 8:
            raise ValueError(f"its header is cut off or unreadable ({size:,} bytes in all)")
        try:
            header = json.loads(f.read(length))
            end = 8 + length + max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise ValueError("its header is not a valid safetensors header") from None
    if size < end:
        raise ValueError(f"it is cut off: {size:,} of its {end:,} bytes")
    return header


def check_shapes(folder: str | Path, what: str = "model.name_or_path") -> None:
    """config.json's vocab_size and hidden size match the embedding matrix in the weights, whose shape is read
    from the safetensors header (no weight is loaded); a mismatch would fail later as a transformers traceback."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        found = _embedding_shape(folder)
    except (OSError, ValueError):
        return  # an unreadable file is refused by the checks that read it
    if not isinstance(config, dict) or found is None:
        return
    name, rows, width = found
    width_key = "embedding_size" if "embedding_size" in config else "hidden_size"  # ELECTRA, ALBERT: their own
    for key, have in (("vocab_size", rows), (width_key, width)):
        said = config.get(key)
        if isinstance(said, int) and said != have:
            raise HfadaptError(
                f"{what}: {folder / 'config.json'} gives {key} {said}, but the weights' embedding matrix ({name}) "
                f"is {rows} x {width}: the config belongs to another model; save the model's own config beside "
                f"its weights (model.save_pretrained(FOLDER)), or set {key} to {have}"
            )


def _embedding_shape(folder: Path) -> tuple[str, int, int] | None:
    """The word embedding matrix's name and shape, from the safetensors header (of the shard that holds it)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    elif (folder / "model.safetensors").is_file():
        files = {name: "model.safetensors" for name in safetensors_header(folder / "model.safetensors")}
    else:
        return None  # pytorch_model.bin: its shapes cannot be read without loading it
    name = next((n for n in sorted(files) if n.endswith("word_embeddings.weight")), None)
    if name is None:
        return None
    shape = safetensors_header(folder / files[name])[name].get("shape")
    return (name, *shape) if isinstance(shape, list) and len(shape) == 2 else None


def check_local(recipe) -> None:
    """What can be checked of a recipe's checkpoint before any compute, where it is a local folder: its files
    (`check_folder`: weights readable, config matching them, a tokenizer) and pretrain.block_size against its
    positions. A Hub id is checked as it loads; a checkpoint that pretraining from scratch only takes the
    tokenizer of is not checked.

    Raises:
        HfadaptError: the first problem found, with its fix.
    """
    if recipe.pretrain is not None and recipe.pretrain.init == "scratch":
        return
    name = recipe.model.name_or_path
    try:
        folder = builtin.checkpoint_path(name) if builtin.is_builtin(name) else Path(name).expanduser()
    except HfadaptError:
        return  # a built-in checkpoint not installed: refused, with the install command, when a run loads it
    if not folder.is_dir():
        return
    check_folder(name)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    positions = config.get("max_position_embeddings") if isinstance(config, dict) else None
    block = recipe.pretrain.block_size if recipe.pretrain is not None else None
    if isinstance(positions, int) and block is not None and block > positions:
        raise HfadaptError(
            f"pretrain.block_size: {block} exceeds the model's {positions} positions (max_position_embeddings "
            f"in its config.json); use at most {positions}"
        )


def check_tokenizer(tokenizer, config, max_length: int | None = None) -> None:
    """The tokenizer belongs to the model (its size fits the embedding matrix) and `max_length` fits its positions."""
    rows = getattr(config, "vocab_size", None)
    if rows:
        _check_rows(tokenizer, rows)
    if rows and len(tokenizer) < rows / 2:
        raise HfadaptError(
            f"model.name_or_path: the tokenizer has {len(tokenizer)} tokens but the model's embedding matrix has "
            f"{rows} rows: it is not the model's tokenizer; save the model's own tokenizer beside it"
        )
    positions = getattr(config, "max_position_embeddings", None)
    limits = [x for x in (positions, tokenizer.model_max_length) if x and x < 1_000_000]  # a huge one means unset
    limit = min(limits) if limits else None
    if max_length is not None and limit and max_length > limit:
        raise HfadaptError(
            f"data.max_length: {max_length} is more than the model's {limit} positions; use at most {limit}"
        )


def load_config(model: ModelConfig, **kwargs):
    """The checkpoint's config (cheap: no weights), with a clear error when there is none."""
    from transformers import AutoConfig

    path = resolve(model.name_or_path)
    try:
        return AutoConfig.from_pretrained(path, revision=model.revision, **kwargs)
    except (OSError, ValueError) as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = (
            "offline, only models already in the Hugging Face cache load by id"
            if offline
            else "check the id, or give a local checkpoint folder"
        )
        raise HfadaptError(
            f"model.name_or_path: cannot load {model.name_or_path} ({hint}): {str(e).splitlines()[0]}"
        ) from None


def load_tokenizer(model: ModelConfig):
    """The checkpoint's tokenizer, with a clear error when there is none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve(model.name_or_path), revision=model.revision)
    except (OSError, ValueError) as e:
        raise HfadaptError(
            f"model.name_or_path: cannot load a tokenizer from {model.name_or_path}: {str(e).splitlines()[0]}"
        ) from None


def task_class(task: TaskConfig):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return (
        AutoModelForTokenClassification if task.type == "token_classification" else AutoModelForSequenceClassification
    )


def task_config(model: ModelConfig, task: TaskConfig, label_names: list[str] | None):
    """The checkpoint's config with the head this task needs and its label names."""
    if label_names is None:  # regression
        return load_config(model, num_labels=1, problem_type="regression")
    problem_type = None if task.type == "token_classification" else task.problem_type
    return load_config(
        model,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        problem_type=problem_type,
    )


def load_task_model(model: ModelConfig, task: TaskConfig, config):
    """The task model, and the names of the modules the checkpoint did not have (its fresh head)."""
    cls = task_class(task)
    model_obj, info = cls.from_pretrained(
        resolve(model.name_or_path), config=config, revision=model.revision, output_loading_info=True
    )
    fresh = fresh_modules(model_obj, info["missing_keys"])
    logger.info("modules the checkpoint lacks, initialised fresh: %s", ", ".join(fresh) or "none")
    return model_obj, fresh


def fresh_modules(model, missing_keys) -> list[str]:
    """The smallest set of modules that holds every parameter the checkpoint did not have."""
    names = dict(model.named_modules())
    found: set[str] = set()
    for key in sorted(missing_keys):
        if "." not in key:
            continue  # a bare parameter on the top model: no module to name
        module = key.rsplit(".", 1)[0]
        # climb to the highest ancestor all of whose parameters are missing: `pooler.dense` -> `pooler`
        while "." in module:
            parent = module.rsplit(".", 1)[0]
            params = [f"{parent}.{n}" for n, _ in names[parent].named_parameters()]
            if parent in ("", model.base_model_prefix) or not all(p in missing_keys for p in params):
                break
            module = parent
        found.add(module)
    return sorted(found)


def embeddings_module(model) -> tuple[str, object]:
    """The module that holds the input embeddings (word, position, type, their norm)."""
    word = model.get_input_embeddings()
    for name, module in model.named_modules():
        if any(child is word for child in module.children()):
            return name, module
    raise HfadaptError(f"{type(model).__name__}: could not find the module holding the input embeddings")


def encoder_layers(model) -> tuple[str, list]:
    """The encoder's layers in order, found as the module list with `num_hidden_layers` entries."""
    import torch

    count = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count and count > 0:
            return name, list(module)
    raise HfadaptError(
        f"{type(model).__name__}: no list of {count} encoder layers found (ALBERT shares "
        "one layer across depths); freeze by adapt.freeze.patterns instead"
    )


def linear_module_names(model) -> list[str]:
    """The distinct last names of the linear layers: what LoRA can target."""
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})


def check_sizes(model, tokenizer) -> None:
    """Refuse a tokenizer with more tokens than the model has embedding rows (`index out of range in self`)."""
    _check_rows(tokenizer, model.get_input_embeddings().num_embeddings)


def _check_rows(tokenizer, rows: int) -> None:
    if len(tokenizer) > rows:
        raise HfadaptError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's embedding matrix has {rows} rows; "
            "rebuild the vocabulary for this tokenizer (the recipe's vocabulary stage) or use the tokenizer "
            "saved with the model"
        )
