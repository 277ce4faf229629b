"""Accelerate configs: every shipped one loads with Accelerate's own loader and says how to launch it;
a config or a launch that asks for more GPUs than the machine has is refused with one clear message."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file

from hfadapt.cli import main
from hfadapt.errors import HfadaptError
from hfadapt.launch import check_accelerate_config, check_environment

REPO = Path(__file__).parent.parent
CONFIGS = sorted((REPO / "recipes" / "accelerate").glob("*.yaml"))

# name: (distributed_type, num_processes, num_machines, other fields that must hold)
EXPECTED = {
    "single_gpu.yaml": ("NO", 1, 1, {"gpu_ids": "0", "mixed_precision": "bf16"}),
    "multi_gpu_ddp.yaml": ("MULTI_GPU", 4, 1, {"mixed_precision": "bf16"}),
    "fsdp.yaml": (
        "FSDP",
        4,
        1,
        {
            "fsdp_config.fsdp_use_orig_params": True,
            "fsdp_config.fsdp_transformer_layer_cls_to_wrap": "BertLayer",
            "fsdp_config.fsdp_reshard_after_forward": "FULL_SHARD",
            "fsdp_config.fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        },
    ),
    "deepspeed_zero2.yaml": (
        "DEEPSPEED",
        4,
        1,
        {"deepspeed_config.zero_stage": 2, "deepspeed_config.offload_optimizer_device": "none"},
    ),
    "deepspeed_zero3.yaml": (
        "DEEPSPEED",
        4,
        1,
        {
            "deepspeed_config.zero_stage": 3,
            "deepspeed_config.zero3_init_flag": True,
            "deepspeed_config.zero3_save_16bit_model": True,
        },
    ),
    "multi_node.yaml": ("MULTI_GPU", 16, 2, {"machine_rank": 0, "main_process_port": 29500}),
    "cpu_2proc.yaml": (
        "MULTI_CPU",
        2,
        1,
        {"use_cpu": True, "mpirun_config.mpirun_hostfile": "recipes/accelerate/hostfile"},
    ),
}


def test_every_shipped_config_is_expected():
    assert sorted(p.name for p in CONFIGS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads_with_accelerate_and_has_its_fields(path):
    config = load_config_from_file(str(path))
    kind, processes, machines, fields = EXPECTED[path.name]
    assert (config.distributed_type.value, config.num_processes, config.num_machines) == (kind, processes, machines)
    for dotted, value in fields.items():
        got = config
        for part in dotted.split("."):
            got = got[part] if isinstance(got, dict) else getattr(got, part)
        assert got == value, dotted


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_opens_with_its_launch_commands(path):
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    command = f"accelerate launch --config_file recipes/accelerate/{path.name}"
    assert (
        f"{command} -m hfadapt finetune RECIPE" in header
        or f"{command} --machine_rank 0 -m hfadapt finetune RECIPE" in header
    )
    assert "scripts/train.py RECIPE" in header
    assert f"hfadapt validate RECIPE --accelerate-config recipes/accelerate/{path.name}" in header


def test_hostfile_gives_two_local_slots():
    assert (REPO / "recipes" / "accelerate" / "hostfile").read_text().split() == ["localhost", "slots=2"]


def write_config(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump({"compute_environment": "LOCAL_MACHINE", **fields}))
    return path


def refusal(path) -> str:
    with pytest.raises(HfadaptError) as info:
        check_accelerate_config(path)
    return str(info.value)


no_gpu = pytest.mark.skipif(torch.cuda.device_count() > 0, reason="checks the refusals of a machine without a GPU")


@no_gpu
def test_multi_gpu_config_on_a_machine_without_gpu_is_refused(tmp_path):
    path = write_config(tmp_path / "big.yaml", distributed_type="MULTI_GPU", num_processes=8)
    assert refusal(path) == (
        f"{path}: asks for distributed_type MULTI_GPU with 8 processes per machine, but this machine has no GPU "
        "(torch.cuda.device_count() is 0); use recipes/accelerate/cpu_2proc.yaml for several CPU processes, "
        "or run hfadapt without accelerate launch for one"
    )


@no_gpu
@pytest.mark.parametrize(
    "name",
    [
        "single_gpu.yaml",
        "multi_gpu_ddp.yaml",
        "fsdp.yaml",
        "deepspeed_zero2.yaml",
        "deepspeed_zero3.yaml",
        "multi_node.yaml",
    ],
)
def test_shipped_gpu_configs_are_refused_without_gpu(name):
    message = refusal(REPO / "recipes" / "accelerate" / name)
    assert (
        "but this machine has no GPU (torch.cuda.device_count() is 0); use recipes/accelerate/cpu_2proc.yaml"
    ) in message


@no_gpu
def test_single_gpu_config_names_its_gpu_in_the_refusal():
    assert "asks for distributed_type NO with 1 process per machine on GPU 0 (gpu_ids)" in refusal(
        REPO / "recipes" / "accelerate" / "single_gpu.yaml"
    )


def test_gpu_ids_beyond_the_machine_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    path = write_config(tmp_path / "ids.yaml", distributed_type="MULTI_GPU", num_processes=2, gpu_ids="1,5")
    assert refusal(path) == (
        f"{path}: gpu_ids names GPU 5, but this machine has 2 GPU(s), numbered 0 to 1; use "
        "gpu_ids: all or indices below 2"
    )


@no_gpu
def test_gpu_ids_on_a_machine_without_gpu_are_refused(tmp_path):
    path = write_config(tmp_path / "ids.yaml", distributed_type="NO", gpu_ids="3")
    assert (
        "asks for distributed_type NO with 1 process per machine on GPU 3 (gpu_ids), but this machine has no GPU"
    ) in refusal(path)


def test_more_processes_than_gpus_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    path = write_config(tmp_path / "nodes.yaml", distributed_type="FSDP", num_processes=8, num_machines=2)
    assert refusal(path) == (
        f"{path}: asks for distributed_type FSDP with 4 processes per machine, but this "
        "machine has 2 GPU(s) (one process per GPU); "
        "lower num_processes to 4"
    )


def test_a_config_that_fits_passes(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    check_accelerate_config(REPO / "recipes" / "accelerate" / "multi_gpu_ddp.yaml")
    check_accelerate_config(
        write_config(tmp_path / "cpu.yaml", distributed_type="DEEPSPEED", use_cpu=True, num_processes=8)
    )


def test_shipped_cpu_config_passes(monkeypatch):
    monkeypatch.chdir(REPO)  # its hostfile path is relative to the repository root
    check_accelerate_config("recipes/accelerate/cpu_2proc.yaml")


def test_cpu_config_with_a_missing_hostfile_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert refusal(REPO / "recipes" / "accelerate" / "cpu_2proc.yaml").endswith(
        "mpirun_config.mpirun_hostfile recipes/accelerate/hostfile does not exist (a "
        "relative path is read from the current folder: run from the repository root)"
    )


def test_missing_and_unreadable_configs_are_refused(tmp_path):
    assert refusal(tmp_path / "none.yaml") == (
        f"{tmp_path / 'none.yaml'}: no such Accelerate config file; the shipped ones are in recipes/accelerate/"
    )
    (tmp_path / "bad.yaml").write_text("distributed_type: [MULTI_GPU\n")
    assert refusal(tmp_path / "bad.yaml").startswith(
        f"{tmp_path / 'bad.yaml'}: Accelerate cannot read this config: while parsing"
    )
    write_config(tmp_path / "typo.yaml", distributed_type="MULTI_GPU", num_proceses=2)
    assert "Accelerate cannot read this config: The config file at" in refusal(tmp_path / "typo.yaml")
    assert "unknown keys (['num_proceses'])" in refusal(tmp_path / "typo.yaml")
    write_config(tmp_path / "kind.yaml", distributed_type="MULTI_GPUS")
    assert "Accelerate cannot read this config: 'MULTI_GPUS' is not a valid DistributedType" in refusal(
        tmp_path / "kind.yaml"
    )


@pytest.mark.integration
@no_gpu
def test_validate_with_a_bad_accelerate_config_exits_2_without_traceback(tiny_recipe, tmp_path):
    from test_cli import run_cli, write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe())
    bad = write_config(tmp_path / "bad.yaml", distributed_type="MULTI_GPU", num_processes=8)
    result = run_cli("validate", recipe, "--accelerate-config", bad)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        f"hfadapt: error: {bad}: asks for distributed_type MULTI_GPU with 8 processes per "
        "machine, but this machine has no GPU"
    ) in result.stderr
    assert result.stdout == ""


@pytest.mark.integration
def test_validate_with_a_fitting_accelerate_config_prints_the_recipe(tiny_recipe, tmp_path, monkeypatch, capsys):
    from test_cli import write_recipe

    monkeypatch.chdir(REPO)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe())
    assert main(["validate", str(recipe), "--accelerate-config", "recipes/accelerate/cpu_2proc.yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["output"]["dir"] == str(tmp_path / "run")


@pytest.mark.parametrize(
    "env, gpus, expected",
    [
        ({}, 0, None),  # a plain run
        ({"LOCAL_RANK": "0", "ACCELERATE_USE_CPU": "True"}, 0, None),  # accelerate launch --cpu
        ({"LOCAL_RANK": "1"}, 2, None),
        (
            {"LOCAL_RANK": "0", "ACCELERATE_USE_CPU": "1", "ACCELERATE_USE_DEEPSPEED": "true"},
            0,
            (
                "this process was started from a DeepSpeed config with ACCELERATE_USE_CPU=1, under which Accelerate "
                "trains with DDP and leaves DeepSpeed out; for DeepSpeed on the CPU set DS_ACCELERATOR=cpu in its "
                "place, or launch with --config_file recipes/accelerate/cpu_2proc.yaml"
            ),
        ),
        ({"LOCAL_RANK": "0", "ACCELERATE_USE_DEEPSPEED": "true", "DS_ACCELERATOR": "cpu"}, 0, None),  # its CPU side
        (
            {"LOCAL_RANK": "0"},
            0,
            (
                "this process was started as distributed worker LOCAL_RANK=0 for a GPU, but this "
                "machine has no GPU (torch.cuda.device_count() is 0); "
                "launch with --config_file recipes/accelerate/cpu_2proc.yaml for several CPU "
                "processes (under torchrun, set ACCELERATE_USE_CPU=1)"
            ),
        ),
        (
            {"LOCAL_RANK": "2", "ACCELERATE_USE_CPU": "False"},
            2,
            (
                "this process was started as distributed worker LOCAL_RANK=2, but this machine has 2 GPU(s): "
                "more processes per machine than GPUs; launch with --num_processes 2 (per "
                "machine) or lower num_processes in the Accelerate config "
                "(check it with: hfadapt validate RECIPE --accelerate-config CONFIG)"
            ),
        ),
    ],
)
def test_check_environment(env, gpus, expected, monkeypatch):
    for name in ("LOCAL_RANK", "ACCELERATE_USE_CPU", "ACCELERATE_USE_DEEPSPEED", "DS_ACCELERATOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    if expected is None:
        check_environment()
    else:
        with pytest.raises(HfadaptError) as info:
            check_environment()
        assert str(info.value) == expected


def test_finetune_in_a_worker_without_its_gpu_stops_before_reading_the_recipe(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for command in ("finetune", "retrain", "pretrain"):
        assert main([command, str(tmp_path / "no-such-recipe.yaml")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            "hfadapt: error: this process was started as distributed worker LOCAL_RANK=3, but this machine has 2 GPU(s)"
        )
        assert "no-such-recipe" not in err


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is here: gpu_check.sh would train")
def test_gpu_check_without_gpu_says_so_and_exits_0():
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    skip = "skipped (no GPU on this machine: nvidia-smi lists none)"
    parts = ["rt", "mlm", "fsdp", "ds2", "ds3", "zh"]
    assert result.stdout.splitlines() == [f"{part}: {skip}" for part in parts]


@pytest.fixture
def train_script():
    """scripts/train.py, imported as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", REPO / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_script_reports_a_bad_recipe_like_the_cli(train_script, tmp_path, capsys):
    assert train_script.main([str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"hfadapt: error: recipe file {tmp_path / 'missing.yaml'} does not exist: give the "
        "path of a YAML recipe (see recipes/)\n"
    )


@pytest.mark.parametrize(
    "sections, command",
    [({}, "finetune"), ({"corpus": {"sources": ["x.txt"]}, "tokenizer": {"vocab_size": 100}}, "retrain")],
)
def test_train_script_runs_retrain_when_the_recipe_has_retraining_sections(
    sections, command, train_script, tiny_recipe, tmp_path, monkeypatch
):
    from test_cli import write_recipe

    calls = []
    monkeypatch.setattr(train_script.cli, "main", lambda argv: calls.append(argv) or 0)
    recipe = str(write_recipe(tmp_path / "r.yaml", {**tiny_recipe(), **sections}))
    assert train_script.main([recipe, "training.seed=1"]) == 0
    assert calls == [[command, recipe, "training.seed=1"]]
