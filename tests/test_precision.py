"""`training.bf16: auto`: bf16 where the hardware runs it fast, fp32 elsewhere, and the run says which."""

from pathlib import Path

import pytest
import torch

from hfadapt import finetune, load_recipe
from hfadapt.recipe import arguments


def no_fast_bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="reads the CPU's flags; a GPU decides instead")
def test_auto_follows_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    flags = set(cpuinfo.read_text().split())
    on, why = arguments.fast_bf16()
    assert on == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"}), why


def test_auto_resolves_to_bf16_on_the_cpu_where_it_is_fast(tiny_recipe, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    args = load_recipe(raw=tiny_recipe(training={"bf16": "auto"})).training_arguments()
    assert args.bf16 is True and args.use_cpu is True
    no_fast_bf16(monkeypatch)
    args = load_recipe(raw=tiny_recipe(training={"bf16": "auto"})).training_arguments()
    assert args.bf16 is False


def test_auto_is_off_without_fast_bf16_and_the_run_says_so(tiny_recipe, monkeypatch):
    no_fast_bf16(monkeypatch)
    run = finetune(load_recipe(raw=tiny_recipe(training={"bf16": "auto", "max_steps": 2})))
    assert run.metrics["precision"] == {
        "bf16": False,
        "asked": "auto",
        "why": "this CPU has neither AVX512-BF16 nor AMX: bf16 would be emulated, slower than fp32",
    }


def test_a_bf16_value_that_is_neither_bool_nor_auto_is_refused(tiny_recipe):
    from hfadapt.errors import RecipeError

    with pytest.raises(RecipeError, match=r"training.bf16: expected true or false, got the string 'fast' \(or auto"):
        load_recipe(raw=tiny_recipe(training={"bf16": "fast"}))


def test_auto_is_the_default_and_fp16_turns_it_off(tiny_recipe, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    recipe = load_recipe(raw=tiny_recipe())
    assert recipe.training["bf16"] == "auto" and recipe.training_arguments().bf16 is True
    assert arguments.precision({"bf16": "auto", "fp16": True}) == {
        "bf16": False,
        "asked": "auto",
        "why": "the recipe asks for fp16",
    }
