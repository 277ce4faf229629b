"""The README and docs/ stay true: their commands run as written, their figures come from generated files."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hfadapt.cli import _parser

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def bash_lines(path: Path) -> list[str]:
    """The command lines of a Markdown file's ```bash blocks (continuations joined, comments dropped)."""
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if inside and line.strip() and not line.lstrip().startswith("#"):
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + " " + line.strip()
            else:
                lines.append(line.strip())
    return lines


def hfadapt_commands() -> list[tuple[str, list[str]]]:
    """Every `hfadapt ...` invocation in the docs' bash blocks, as (where, argv after `hfadapt`)."""
    found = []
    for path in DOCS:
        for line in bash_lines(path):
            for part in re.split(r"&&|\|\|", line):
                words = shlex.split(part.strip())
                names = [i for i, w in enumerate(words) if w in ("hfadapt", ".venv/bin/hfadapt")]
                if names and not any(w == "-m" for w in words[: names[0]]):
                    found.append((f"{path.name}: {part.strip()}", words[names[0] + 1 :]))
    return found


COMMANDS = hfadapt_commands()


def test_the_readme_is_a_guide_of_at_most_250_lines():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_the_readme_quotes_no_percentage_that_docs_do_not_hold():
    generated = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "docs").rglob("*.md"))
    quoted = set(re.findall(r"\d+(?:\.\d+)?%", (REPO / "README.md").read_text(encoding="utf-8")))
    assert quoted <= set(re.findall(r"\d+(?:\.\d+)?%", generated)), quoted


def test_the_docs_name_hfadapt_commands():
    assert len(COMMANDS) >= 10 and any(argv[:1] == ["validate"] for _, argv in COMMANDS)


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_documented_command_parses(where, argv):
    parser = _parser()
    if argv in (["--help"], ["-h"]):
        return
    args, extra = parser.parse_known_args(argv)
    assert all("=" in item for item in extra), f"{where}: unrecognized {extra}"


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_documented_path_exists(where, argv):
    for word in argv:
        if re.match(r"^(recipes|scripts|benchmarks|docs)/", word):
            assert (REPO / word).exists(), f"{where}: {word} does not exist"


@pytest.mark.integration
def test_every_documented_validate_of_a_shipped_recipe_passes(capsys):
    import torch

    from hfadapt.cli import main

    checked = 0
    for where, argv in COMMANDS:
        if argv[:1] != ["validate"] or not (REPO / argv[1]).is_file():
            continue
        config = argv[argv.index("--accelerate-config") + 1] if "--accelerate-config" in argv else ""
        if config and "cpu" not in Path(config).name and torch.cuda.device_count() == 0:
            argv = argv[: argv.index("--accelerate-config")]  # a GPU config is refused here, as it should be
        assert main([argv[0], str(REPO / argv[1]), *argv[2:]]) == 0, where
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_validates_from_the_command_line(path, capsys):
    from hfadapt.cli import main

    assert main(["validate", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "name_or_path:" in printed and "  # " in printed  # resolved, with each field's help


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_headers_say_how_to_run_not_how_long(path):
    header = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#"))
    assert not re.search(r"\d+(\.\d+)?\s*%|\d+\s*min\b|\bminutes\b|\bhours?\b", header), header


def test_every_local_link_in_the_docs_exists():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)", path.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (path.parent / target).exists(), f"{path.name} links to {target}"


def test_help_answers():
    from hfadapt.cli import main

    for argv in (["--help"], ["finetune", "--help"], ["advise", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
