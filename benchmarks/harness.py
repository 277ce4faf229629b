"""What every benchmark in this folder shares: its arms run in fresh processes, its table, and where the table goes.

A benchmark is a script, `python benchmarks/bench_X.py [options]`. Its parent process stays light
(no torch): Linux keeps a process's peak RSS across exec, so a child started from a large parent
would report the parent's memory as its own. For each arm the parent starts the same script again
with this invocation's options and `--arm NAME`; the child runs that arm alone and hands back its
result as JSON, with its own peak RSS. The parent prints the results side by side, each ratio
taken against a baseline arm measured in the same invocation, and writes the table, with the
command, the date and the machine, to docs/benchmarks/<script name>.md (not with `--no-write`).

    parser = harness.parser(__doc__)
    args = parser.parse_args()
    if args.arm:
        harness.answer(args, run_arm(args.arm, ...))  # in the child
        return
    rows = {arm: harness.run_arm(__file__, arm) for arm in ("plain", "hfadapt")}
    harness.publish(__file__, [harness.Table("what was run", rows, "plain", [harness.Column(...)])], args.no_write)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks"
RATIOS = ("value", "speed")


def parser(doc: str) -> argparse.ArgumentParser:
    """The script's argument parser, described by the first line of its docstring, with the flags every benchmark has.

    Args:
        doc: the script's docstring.

    Returns:
        A parser with `--no-write` (print the table, leave docs/benchmarks alone) and the hidden
        `--arm` and `--result` that `run_arm` gives a child.
    """
    made = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    made.add_argument("--no-write", action="store_true", help="print the table only; leave docs/benchmarks as it is")
    made.add_argument("--arm", help=argparse.SUPPRESS)  # in a child: the one arm to run
    made.add_argument("--result", help=argparse.SUPPRESS)  # in a child: the JSON file its result goes to
    return made


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kilobytes on Linux


def answer(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """In a child: hand `result` back to the parent, with this process's peak RSS as `peak_rss_mb`.

    Args:
        args: the parsed arguments, holding the `--result` file the parent reads.
        result: the arm's figures, as JSON can hold them.
    """
    Path(args.result).write_text(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}), encoding="utf-8")


def run_arm(
    script: str | Path, arm: str, *extra: str, env: dict[str, str] | None = None, cwd: str | Path | None = None
) -> dict[str, Any]:
    """Run one arm of `script` in a fresh process and return its result.

    The child is `python SCRIPT OPTIONS --arm ARM --result FILE EXTRA...`, OPTIONS being this
    invocation's own, so the arm sees the settings the parent was given.

    Args:
        script: the benchmark script (its `__file__`).
        arm: the arm's name, as the script's `--arm` takes it.
        extra: more arguments for the child (its scratch folder, say).
        env: the child's environment (by default this one's).
        cwd: the child's working directory (by default this one's).

    Returns:
        What the child passed to `answer`, with its `peak_rss_mb`.

    Raises:
        SystemExit: the child failed or gave no result; the message holds the end of its stderr.
    """
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        command = [sys.executable, str(script), *sys.argv[1:], "--arm", arm, "--result", str(result), *extra]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
        if done.returncode or not result.exists():
            raise SystemExit(f"arm {arm!r} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(result.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Column:
    """One figure of every arm: `key` in each result, shown under `title` with `fmt`.

    `ratio` adds a column against the baseline arm: "value" is the arm's figure over the
    baseline's (for rates, memory, losses), "speed" the baseline's over the arm's (for durations,
    so that 2.00x reads twice as fast).
    """

    key: str
    title: str
    fmt: str = "{:.2f}"
    ratio: str | None = None

    def __post_init__(self) -> None:
        if self.ratio not in (None, *RATIOS):
            raise ValueError(f"Column {self.key!r}: ratio must be None, 'value' or 'speed', not {self.ratio!r}")


@dataclass
class Table:
    """The arms of one comparison side by side.

    Args:
        title: one line saying what was run and with what settings.
        rows: each arm's result, by the name its row shows, in the order of the rows.
        baseline: the arm every ratio is taken against (one of `rows`).
        columns: the figures to show.
    """

    title: str
    rows: dict[str, dict[str, Any]]
    baseline: str
    columns: list[Column]

    def __post_init__(self) -> None:
        if self.baseline not in self.rows:
            raise ValueError(f"Table {self.title!r}: the baseline {self.baseline!r} is not one of {list(self.rows)}")

    def ratio(self, arm: str, column: Column) -> float | None:
        """The arm's figure against the baseline's, as `column.ratio` says; None where either is missing or zero."""
        value, base = self.rows[arm].get(column.key), self.rows[self.baseline].get(column.key)
        if not value or not base:
            return None
        return value / base if column.ratio == "value" else base / value

    def markdown(self) -> str:
        """The title, then a markdown table: a row per arm, each figure followed by its ratio where asked."""
        header = ["arm"]
        for column in self.columns:
            header.append(column.title)
            if column.ratio == "value":
                header.append(f"{column.title} / {self.baseline}")
            elif column.ratio == "speed":
                header.append(f"speed vs {self.baseline}")
        lines = [self.title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for arm, result in self.rows.items():
            cells = [f"**{arm}** (baseline)" if arm == self.baseline else arm]
            for column in self.columns:
                value = result.get(column.key)
                cells.append("-" if value is None else column.fmt.format(value))
                if column.ratio:
                    ratio = self.ratio(arm, column)
                    cells.append("-" if ratio is None else f"{ratio:.2f}x")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def plain_arms() -> tuple[list[str], str]:
    """The plain arms of a training benchmark on this machine: random batches, the Trainer's own
    `group_by_length`, and that with bf16 where the machine runs bf16 fast (hfadapt's `bf16: auto` rule,
    asked of a child process so that this one stays free of torch); and a note saying which.
    """
    code = "import json; from hfadapt.recipe.arguments import fast_bf16; print(json.dumps(fast_bf16()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    bf16, why = json.loads(done.stdout.strip().splitlines()[-1])
    arms = ["plain", "plain+group_by_length"] + (["plain+group_by_length+bf16"] if bf16 else [])
    return arms, f"bf16 on this machine: {'yes' if bf16 else 'no'} ({why})."


def against_plain(
    rows: dict[str, dict[str, Any]], plain: list[str], arms: list[str], key: str, unit: str
) -> tuple[str, list[str]]:
    """The fastest plain arm by `key`, and a note line per arm of `arms` with its ratio against each plain arm."""
    best = max(plain, key=lambda arm: rows[arm][key])
    notes = []
    for arm in arms:
        against = ", ".join(f"{rows[arm][key] / rows[p][key]:.2f}x {p}" for p in plain)
        notes.append(f"- {arm}: {against} ({unit}).")
    return best, notes


def machine() -> str:
    """CPU count, platform, GPU and torch's threads: what the figures depend on.

    Imports torch, so call it once the arms have run (see the module's docstring).
    """
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), {platform.platform()}, {gpu}; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )


def command(script: str | Path, argv: list[str] | None = None) -> str:
    """The command line that reproduces this run, from the repository root."""
    path = Path(script).resolve()
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    options = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-write"]
    return shlex.join(["python", str(shown), *options])


def publish(
    script: str | Path,
    tables: list[Table],
    no_write: bool = False,
    notes: list[str] | tuple[str, ...] = (),
    argv: list[str] | None = None,
    folder: Path = DOCS,
) -> str:
    """Print the tables and write them to FOLDER/<script name>.md, with the command, the date and the machine.

    Args:
        script: the benchmark script (its `__file__`); its name, without .py, names the file.
        tables: the comparisons, in order.
        no_write: print only.
        notes: lines shown under the tables (how to read them).
        argv: the script's options (by default this invocation's).
        folder: where the markdown goes.

    Returns:
        The markdown text.
    """
    name = Path(script).stem
    lines = [
        f"# {name}",
        "",
        f"Produced by `{command(script, argv)}` on {datetime.date.today().isoformat()}.",
        f"Machine: {machine()}.",
    ]
    for table in tables:
        lines += ["", table.markdown()]
    if notes:
        lines += ["", *notes]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    if not no_write:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.md").write_text(text, encoding="utf-8")
        print(f"wrote {folder / f'{name}.md'}")
    return text
