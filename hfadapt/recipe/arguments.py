"""The libraries' own config objects from a recipe: `TrainingArguments` and `peft.LoraConfig`.

Imported lazily: building them needs transformers or peft, and `hfadapt --help` must not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hfadapt import ranks


def training_arguments(output_dir: str | Path, settings: dict[str, Any], **fixed: Any):
    """`transformers.TrainingArguments` from a recipe's `training` section, with the device settings it needs."""
    from transformers import TrainingArguments

    settings = dict(settings)
    if settings.get("bf16") == "auto":
        settings["bf16"] = precision(settings)["bf16"]
    on_cpu = settings.get("bf16") or os.environ.get("DS_ACCELERATOR") == "cpu"
    if on_cpu and "use_cpu" not in settings and not has_accelerator():
        # bf16 on a CPU (autocast; fast where the CPU has AVX512-BF16 or AMX): transformers
        # refuses it unless told use_cpu, so `bf16: true` would fail on every machine without a GPU;
        # DeepSpeed on its CPU accelerator: without it TrainingArguments counts one process, and DeepSpeed
        # refuses the batch size ("train_batch_size is not equal to micro_batch_per_gpu * ... * world_size")
        settings["use_cpu"] = True
    if "dataloader_pin_memory" not in settings and not has_accelerator():
        settings["dataloader_pin_memory"] = False  # nothing to pin for; torch warns at every data loader
    # On the CPU, TrainingArguments starts the process group without its ddp_timeout (transformers 5.25 passes
    # it for GPU backends only), so a hung node held the others for torch's default 30 minutes
    # (tests/test_multi_node.py): start the group here, as TrainingArguments would, with it. The first
    # TrainingArguments a run builds (the recipe's check of `training`) makes the group, for every stage.
    from accelerate.utils import parse_flag_from_env

    cpu = bool(settings.get("use_cpu")) or parse_flag_from_env("ACCELERATE_USE_CPU")
    timeout = settings.get("ddp_timeout", TrainingArguments.ddp_timeout)
    ranks.join(timeout, cpu=cpu, backend=settings.get("ddp_backend"))
    return TrainingArguments(output_dir=str(output_dir), **fixed, **settings)


def fast_bf16(device=None) -> tuple[bool, str]:
    """Whether `device` (a `torch.device`; by default where training runs: the GPU when there is one,
    else the CPU) runs bf16 faster than fp32, and why: a CUDA GPU from Ampere on, or a CPU with
    AVX512-BF16 or AMX (where bf16 autocast measured 2.14x fp32 for a masked-LM step,
    docs/benchmarks/bench_bf16.md). Other hardware emulates bf16, slower than fp32."""
    import torch

    kind = device.type if device is not None else None
    if kind == "cuda" or (kind is None and torch.cuda.is_available()):
        index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
        name, (major, _) = torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index)
        if major >= 8:
            return True, f"{name} (compute capability {major}.x) has bf16 units"
        return False, f"{name} (compute capability {major}.x) predates bf16 units (Ampere, 8.0)"
    if kind not in (None, "cpu") or (kind is None and has_accelerator()):
        return False, "bf16 speed on this accelerator is not measured; set bf16: true to use it"
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return True, "this CPU has AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return True, "this CPU has AVX512-BF16"
    return False, "this CPU has neither AVX512-BF16 nor AMX: bf16 would be emulated, slower than fp32"


def precision(settings: dict[str, Any]) -> dict[str, Any]:
    """What a `training` section's `bf16` resolves to on this machine, for the run's report."""
    asked = settings.get("bf16", False)
    if asked != "auto":
        return {"bf16": bool(asked), "asked": asked}
    if settings.get("fp16"):
        return {"bf16": False, "asked": "auto", "why": "the recipe asks for fp16"}
    on, why = fast_bf16()
    return {"bf16": on, "asked": "auto", "why": why}


def has_accelerator() -> bool:
    """Whether torch sees a GPU (CUDA, MPS or XPU)."""
    import torch

    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or torch.backends.mps.is_available() or bool(xpu and xpu.is_available())


def lora_config(
    task_type: str, settings: dict[str, Any], target_modules: list[str] | None, modules_to_save: list[str] | None
):
    """`peft.LoraConfig` from a recipe's `adapt.lora` section, for a sequence or token task."""
    from peft import LoraConfig, TaskType

    kind = TaskType.SEQ_CLS if task_type == "sequence_classification" else TaskType.TOKEN_CLS
    kwargs = dict(settings)
    if target_modules is not None:
        kwargs["target_modules"] = target_modules
    return LoraConfig(task_type=kind, modules_to_save=modules_to_save, **kwargs)


def library_problems(path: str, make: Callable[[], Any], library: str = "transformers.TrainingArguments") -> list[str]:
    """The library's own checks of a section, as recipe problems: `make()` builds its config object."""
    try:
        make()
    except (ValueError, TypeError) as e:
        return [f"{path}: {library} rejects it: {e}"]
    return []


# TrainingArguments fields it accepts at values no run can train with: (lowest allowed, inclusive?)
POSITIVE = ("learning_rate",)
AT_LEAST_ONE = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
NOT_NEGATIVE = ("weight_decay", "warmup_steps", "max_grad_norm", "num_train_epochs")


def training_problems(path: str, settings: dict[str, Any]) -> list[str]:
    """Values TrainingArguments takes but no run can train with (a run would fail after it started)."""
    found = []
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue  # a non-finite number is refused by its type check
        if name in POSITIVE and not value > 0:
            found.append(f"{path}.{name}: must be above 0, got {value}")
        elif name in AT_LEAST_ONE and value < 1:
            found.append(f"{path}.{name}: must be 1 or more, got {value}")
        elif name in NOT_NEGATIVE and value < 0:
            found.append(f"{path}.{name}: must be 0 or more, got {value}")
    steps = settings.get("max_steps", -1)
    if settings.get("num_train_epochs") == 0 and not (isinstance(steps, int) and steps > 0):
        found.append(f"{path}.num_train_epochs: 0 epochs trains nothing; give 1 or more, or set {path}.max_steps")
    if steps == 0:
        found.append(f"{path}.max_steps: 0 steps trains nothing; give 1 or more, or -1 to train by epochs")
    return found


# The trackers `training.report_to` can name, the module each needs, and the package that brings it.
TRACKERS = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "trackio": (("trackio",), "trackio"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
    "comet_ml": (("comet_ml",), "comet-ml"),
    "clearml": (("clearml",), "clearml"),
    "dvclive": (("dvclive",), "dvclive"),
    "neptune": (("neptune",), "neptune"),
    "codecarbon": (("codecarbon",), "codecarbon"),
    "swanlab": (("swanlab",), "swanlab"),
    "azure_ml": (("azureml",), "azureml-sdk"),
    "dagshub": (("dagshub",), "dagshub"),
    "flyte": (("flytekit",), "flytekit"),
    "kubeflow": (("kubeflow",), "kubeflow"),
}


def tracker_problems(path: str, report_to: Any) -> list[str]:
    """Trackers named in `report_to` that are unknown or not installed: refused before any weight loads."""
    import importlib.util

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    found = []
    for name in names:
        if name in ("none", "all"):
            continue
        if name not in TRACKERS:
            found.append(f"{path}.report_to: {name!r} is not a tracker; use none, all, or one of {', '.join(TRACKERS)}")
            continue
        modules, package = TRACKERS[name]
        if not any(importlib.util.find_spec(m) for m in modules):
            found.append(f"{path}.report_to: {name} is not installed; pip install {package}, or set report_to: none")
    return found
