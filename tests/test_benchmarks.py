"""The benchmark harness: ratios against the baseline, the markdown it writes, an arm's result handed back
from its own process; and every benchmark and docs/ script imports cleanly. No benchmark is run."""

import datetime
import importlib.util
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py")) + [REPO / "docs" / "results.py", REPO / "docs" / "mandarin.py"]


@pytest.fixture
def harness(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as `python benchmarks/bench_X.py` has it
    import harness

    return harness


def fake_table(harness):
    rows = {
        "plain": {"samples_per_second": 10.0, "runtime": 4.0, "peak_rss_mb": 1000.0},
        "hfadapt": {"samples_per_second": 25.0, "runtime": 2.0, "peak_rss_mb": 1500.0, "note": None},
    }
    columns = [
        harness.Column("samples_per_second", "samples/s", ratio="value"),
        harness.Column("runtime", "train s", "{:.1f}", ratio="speed"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:.0f}", ratio="value"),
        harness.Column("note", "note", "{}", ratio="value"),
    ]
    return harness.Table("Fine-tuning for 5 steps.", rows, "plain", columns)


def test_ratios_against_the_baseline(harness):
    table = fake_table(harness)
    samples, runtime, memory, note = table.columns
    assert table.ratio("hfadapt", samples) == 2.5  # a rate: the arm's over the baseline's
    assert table.ratio("hfadapt", runtime) == 2.0  # a duration: the baseline's over the arm's
    assert table.ratio("hfadapt", memory) == 1.5
    assert table.ratio("plain", samples) == 1.0
    assert table.ratio("hfadapt", note) is None  # a figure the arm lacks


def test_table_markdown(harness):
    assert fake_table(harness).markdown().splitlines() == [
        "Fine-tuning for 5 steps.",
        "",
        "| arm | samples/s | samples/s / plain | train s | speed vs plain | peak RSS MB | peak RSS MB / plain "
        "| note | note / plain |",
        "|---|---|---|---|---|---|---|---|---|",
        "| **plain** (baseline) | 10.00 | 1.00x | 4.0 | 1.00x | 1000 | 1.00x | - | - |",
        "| hfadapt | 25.00 | 2.50x | 2.0 | 2.00x | 1500 | 1.50x | - | - |",
    ]


@pytest.mark.integration
def test_publish_writes_the_table_with_the_command_date_and_machine(harness, tmp_path, capsys):
    script = BENCHMARKS / "bench_finetune.py"
    text = harness.publish(script, [fake_table(harness)], argv=["--steps", "5"], folder=tmp_path, notes=["A note."])
    written = (tmp_path / "bench_finetune.md").read_text(encoding="utf-8")
    assert written == text
    assert text in capsys.readouterr().out
    lines = written.splitlines()
    assert lines[0] == "# bench_finetune"
    today = datetime.date.today().isoformat()
    assert lines[2] == f"Produced by `python benchmarks/bench_finetune.py --steps 5` on {today}."
    assert re.fullmatch(rf"Machine: {os.cpu_count()} CPUs \(.+\), .+; torch \S+ with \d+ threads\.", lines[3])
    assert "| hfadapt | 25.00 | 2.50x | 2.0 | 2.00x | 1500 | 1.50x | - | - |" in lines
    assert lines[-1] == "A note."


def test_no_write_leaves_the_folder_alone(harness, tmp_path):
    harness.publish(BENCHMARKS / "bench_bf16.py", [fake_table(harness)], no_write=True, argv=[], folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_command_leaves_out_no_write(harness):
    command = harness.command(BENCHMARKS / "bench_pretrain.py", ["--steps", "3", "--no-write", "--texts", "a b"])
    assert command == "python benchmarks/bench_pretrain.py --steps 3 --texts 'a b'"


def test_bad_column_and_baseline_are_refused(harness):
    with pytest.raises(ValueError, match="^Column 'x': ratio must be None, 'value' or 'speed', not 'faster'$"):
        harness.Column("x", "x", ratio="faster")
    with pytest.raises(ValueError, match=r"^Table 't': the baseline 'fp16' is not one of \['fp32', 'bf16'\]$"):
        harness.Table("t", {"fp32": {}, "bf16": {}}, "fp16", [])


def test_run_arm_hands_back_the_child_result(harness, tmp_path, monkeypatch):
    """A stand-in benchmark (not a real one): the child sees the parent's options and its own extra ones."""
    script = tmp_path / "bench_fake.py"
    script.write_text(
        textwrap.dedent(
            """
            import harness

            parser = harness.parser("A stand-in benchmark.")
            parser.add_argument("--size", type=int)
            parser.add_argument("--folder")
            args = parser.parse_args()
            if args.arm == "broken":
                raise SystemExit("this arm breaks")
            harness.answer(args, {"arm": args.arm, "size": args.size, "folder": args.folder})
            """
        )
    )
    monkeypatch.setattr(sys, "argv", [str(script), "--size", "3", "--no-write"])
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS)}
    result = harness.run_arm(script, "plain", "--folder", "here", env=env)
    assert {k: result[k] for k in ("arm", "size", "folder")} == {"arm": "plain", "size": 3, "folder": "here"}
    assert 1 < result["peak_rss_mb"] < 10_000
    with pytest.raises(SystemExit, match="arm 'broken' failed \\(exit 1\\):\nthis arm breaks"):
        harness.run_arm(script, "broken", env=env)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports(path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))  # the script's folder, as `python FOLDER/SCRIPT.py` has it
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # main() is not run
    assert callable(module.main)
    assert f"python {path.parent.name}/{path.name}" in module.__doc__  # the docstring gives the command
