"""Checks that an Accelerate launch fits the machine, before a weight is loaded.

`check_accelerate_config` reads a config with Accelerate's own loader and refuses one that asks
for GPUs this machine does not have; `check_environment` refuses to start a worker process
that `accelerate launch` (or torchrun) started for a GPU that does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path

from hfadapt.errors import HfadaptError

CPU_CONFIG = "recipes/accelerate/cpu_2proc.yaml"


def check_accelerate_config(path: str | Path) -> None:
    """Load an Accelerate config file and raise HfadaptError if this machine cannot run it."""
    import torch
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    if not Path(path).is_file():
        raise HfadaptError(f"{path}: no such Accelerate config file; the shipped ones are in recipes/accelerate/")
    try:
        config = load_config_from_file(str(path))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as e:
        raise HfadaptError(f"{path}: Accelerate cannot read this config: {e}") from None

    kind = config.distributed_type
    use_cpu = getattr(config, "use_cpu", False)
    gpu_ids = getattr(config, "gpu_ids", None)
    gpu_ids = None if gpu_ids in (None, "all") else [i.strip() for i in str(gpu_ids).split(",")]
    hostfile = getattr(config, "mpirun_config", {}).get("mpirun_hostfile")
    if hostfile and not Path(hostfile).expanduser().is_file():
        raise HfadaptError(
            f"{path}: mpirun_config.mpirun_hostfile {hostfile} does not exist (a relative path "
            "is read from the current folder: run from the repository root)"
        )
    on_gpu = (
        kind in (DistributedType.MULTI_GPU, DistributedType.FSDP)
        or (kind == DistributedType.DEEPSPEED and not use_cpu)
        or (kind == DistributedType.NO and not use_cpu and gpu_ids is not None)
    )
    if not on_gpu:
        return

    gpus = torch.cuda.device_count()
    machines = getattr(config, "num_machines", 1) or 1
    per_machine = max(getattr(config, "num_processes", -1), 0) // machines  # 0: num_processes left to the command line
    asks = f"distributed_type {kind.value}"
    if per_machine:
        asks += f" with {per_machine} process{'es' if per_machine > 1 else ''} per machine"
    if gpu_ids is not None:
        asks += f" on GPU {','.join(gpu_ids)} (gpu_ids)"
    if gpus == 0:
        raise HfadaptError(
            f"{path}: asks for {asks}, but this machine has no GPU (torch.cuda.device_count() is 0); "
            f"use {CPU_CONFIG} for several CPU processes, or run hfadapt without accelerate launch for one"
        )
    for i in gpu_ids or []:
        if not i.isdigit() or int(i) >= gpus:
            raise HfadaptError(
                f"{path}: gpu_ids names GPU {i}, but this machine has {gpus} GPU(s), numbered 0 to "
                f"{gpus - 1}; use gpu_ids: all or indices below {gpus}"
            )
    usable = len(gpu_ids) if gpu_ids is not None else gpus
    if per_machine > usable:
        raise HfadaptError(
            f"{path}: asks for {asks}, but this machine has {gpus} "
            f"GPU(s){f' and gpu_ids names {usable}' if gpu_ids else ''} (one process per GPU); "
            f"lower num_processes to {usable * machines}"
        )


def check_environment() -> None:
    """Raise HfadaptError in a distributed GPU worker whose LOCAL_RANK names a GPU that does not exist, or in a
    DeepSpeed worker that Accelerate's CPU switch would train with DDP instead."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is None:
        return
    from accelerate.utils import parse_flag_from_env

    deepspeed = parse_flag_from_env("ACCELERATE_USE_DEEPSPEED")
    if parse_flag_from_env("ACCELERATE_USE_CPU"):
        if deepspeed:
            # tried (docs/devices.md): Accelerate's CPU switch wraps the model in DDP, and DeepSpeed never runs
            raise HfadaptError(
                "this process was started from a DeepSpeed config with ACCELERATE_USE_CPU=1, under which Accelerate "
                "trains with DDP and leaves DeepSpeed out; for DeepSpeed on the CPU set DS_ACCELERATOR=cpu in its "
                f"place, or launch with --config_file {CPU_CONFIG}"
            )
        return
    if deepspeed and os.environ.get("DS_ACCELERATOR") == "cpu":
        return  # DeepSpeed on its CPU accelerator, over gloo (docs/devices.md)
    import torch

    gpus = torch.cuda.device_count()
    if int(local_rank) < gpus:
        return
    if gpus == 0:
        raise HfadaptError(
            f"this process was started as distributed worker LOCAL_RANK={local_rank} for a "
            "GPU, but this machine has no GPU "
            f"(torch.cuda.device_count() is 0); launch with --config_file {CPU_CONFIG} for several CPU processes "
            "(under torchrun, set ACCELERATE_USE_CPU=1)"
        )
    raise HfadaptError(
        f"this process was started as distributed worker LOCAL_RANK={local_rank}, but this machine has {gpus} GPU(s): "
        f"more processes per machine than GPUs; launch with --num_processes {gpus} (per "
        "machine) or lower num_processes in the "
        "Accelerate config (check it with: hfadapt validate RECIPE --accelerate-config CONFIG)"
    )
