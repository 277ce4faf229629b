"""The package's shape: a fast CLI, layers without cycles, small modules, a linted tree, a reference in sync."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "hfadapt"
HEAVY = ("torch", "transformers", "datasets", "peft", "accelerate")


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_cli_and_its_help_load_no_heavy_library():
    loaded = run_python(
        "import sys, contextlib, io\n"
        "from hfadapt.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    assert loaded.strip() == ""


@pytest.mark.integration
def test_the_public_api_loads_on_first_use():
    out = run_python(
        "import sys, hfadapt\n"
        "print('torch' in sys.modules)\n"
        "import hfadapt.training.finetuning\n"  # the module named like the function never hides the function
        "print(callable(hfadapt.finetune), callable(hfadapt.retrain), "
        "callable(hfadapt.advise), 'torch' in sys.modules)\n"
    )
    assert out.split() == ["False", "True", "True", "True", "True"]


def test_no_module_or_package_shares_a_public_name():
    import hfadapt

    modules = {p.stem for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.rglob("*") if p.is_dir()}
    assert sorted(set(hfadapt.__all__) & modules) == []
    assert "__class__" not in (PACKAGE / "__init__.py").read_text()


def test_each_package_docstring_lists_its_modules():
    import importlib

    for init in sorted(PACKAGE.glob("*/__init__.py")):
        package = init.parent
        doc = importlib.import_module(f"hfadapt.{package.name}").__doc__ or ""
        modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
        named = {m for m in modules if f"`{m}`" in doc}
        assert named == modules, f"hfadapt/{package.name}/__init__.py does not name {sorted(modules - named)}"
        listed = set(re.findall(r"^- `(\w+)`", doc, re.M))
        assert listed <= modules, (
            f"hfadapt/{package.name}/__init__.py lists modules it lacks: {sorted(listed - modules)}"
        )


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The hfadapt modules `path` imports, at the top or inside functions (a lazy import is an edge too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking = {
        id(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    }
    skip = {id(child) for node in ast.walk(tree) if id(node) in checking for child in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hfadapt"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    found.discard(module_name(path))
    return found


def test_no_import_cycle_among_hfadapt_modules():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(files)) for name, path in files.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


@pytest.mark.skipif(shutil.which("ruff", path=str(Path(sys.executable).parent)) is None, reason="ruff not installed")
def test_ruff_passes():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    for command in ([ruff, "check", "."], [ruff, "format", "--check", "."]):
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_recipe_reference_is_up_to_date():
    from hfadapt.recipe import reference

    written = (REPO / "docs" / "recipe.md").read_text(encoding="utf-8")
    assert written == reference.render(), "docs/recipe.md is stale: python -m hfadapt.recipe.reference docs/recipe.md"


def test_every_recipe_field_has_its_help():
    import dataclasses

    from hfadapt.recipe import schema
    from hfadapt.recipe.typecheck import section_class

    todo, seen = [schema.Recipe], set()
    while todo:
        cls = todo.pop()
        seen.add(cls)
        hints = __import__("typing").get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
            inner = section_class(hints[f.name])
            if inner is not None and inner not in seen:
                todo.append(inner)
    assert len(seen) >= 10


@pytest.mark.integration
def test_the_commented_recipe_that_validate_prints_reads_back_the_same():
    import yaml

    from hfadapt.recipe import dump_recipe, load_recipe

    for path in sorted((REPO / "recipes").glob("*.yaml")):
        recipe = load_recipe(path)
        assert load_recipe(raw=yaml.safe_load(dump_recipe(recipe, comments=True))) == recipe
