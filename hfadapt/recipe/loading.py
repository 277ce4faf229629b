"""Recipe files: read YAML, apply `key=value` overrides, write the resolved recipe back."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from hfadapt.errors import HfadaptError, RecipeError
from hfadapt.recipe.schema import Recipe
from hfadapt.recipe.typecheck import NUMBER


def load_recipe(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), raw: dict | None = None
) -> Recipe:
    """Read a recipe from a YAML file (or a dict), apply overrides, and check it all.

    Args:
        path: a YAML recipe file; ignored when `raw` is given.
        overrides: `key=value` strings, e.g. `training.learning_rate=3e-5`, applied in order.
        raw: the recipe as a dict, instead of a file.

    Returns:
        The checked `Recipe`, every default resolved.

    Raises:
        RecipeError: listing every problem at once, each with its dotted path and a hint.
        HfadaptError: the file is missing or is not YAML.
    """
    source = str(path) if path is not None else "recipe"
    if raw is None:
        if path is None:
            raise HfadaptError("load_recipe needs a recipe file or a dict")
        raw = _read(Path(path))
    if not isinstance(raw, dict):
        return Recipe.from_dict(raw, source)  # reports the top level
    raw = _deepcopy(raw)
    problems: list[str] = []
    for item in overrides:
        _apply_override(raw, item, problems)
    if problems:
        raise RecipeError(problems, source)
    return Recipe.from_dict(raw, source)


def _read(path: Path) -> Any:
    if path.is_dir():
        inside = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        example = next((p for p in inside if p.name == "recipe.yaml"), inside[0] if inside else path / "recipe.yaml")
        raise HfadaptError(f"{path} is a folder, not a recipe file; give the YAML file (e.g. {example})")
    if not path.is_file():
        raise HfadaptError(f"recipe file {path} does not exist: give the path of a YAML recipe (see recipes/)")
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            twice = _keys_given_twice(node, "", set())
            if twice:
                raise RecipeError(twice, str(path))
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError:
        raise HfadaptError(f"{path} is not a text file; give the path of a YAML recipe (see recipes/)") from None
    except yaml.YAMLError as e:
        raise HfadaptError(f"{path} is not valid YAML: {e}") from None
    return {} if raw is None else raw


def _keys_given_twice(node: Any, path: str, seen: set[int]) -> list[str]:
    """Every key given twice in one mapping, at any depth: PyYAML would keep the last one silently."""
    if id(node) in seen:  # an alias of a node already walked
        return []
    seen.add(id(node))
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key, yaml.ScalarNode):
                continue  # `<<: *defaults` may be overridden; a non-scalar key is refused by the type check
            dotted = f"{path}.{key.value}" if path else str(key.value)
            line, name = key.start_mark.line + 1, (key.tag, key.value)
            if name not in lines:
                lines[name] = line
            else:
                first = lines[name]
                where = f"on line {line}" if first == line else f"on lines {first} and {line}"
                fix = "merge the two into one" if isinstance(value, yaml.MappingNode) else "keep one"
                found.append(f"{dotted}: given twice, {where} (YAML would keep only the second); {fix}")
            found += _keys_given_twice(value, dotted, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _keys_given_twice(item, f"{path}[{i}]", seen)
    return found


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe as YAML; `load_recipe` reads it back to the same recipe."""
    Path(path).write_text(dump_recipe(recipe), encoding="utf-8")


def dump_recipe(recipe: Recipe, comments: bool = False) -> str:
    """The resolved recipe as YAML; with `comments`, each of hfadapt's fields carries its help."""
    if not comments:
        return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)
    lines: list[str] = []
    _dump_section(recipe, "", lines)
    return "\n".join(lines) + "\n"


def _dump_section(section: Any, pad: str, lines: list[str]) -> None:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        note = f"  # {f.metadata['help']}" if "help" in f.metadata else ""
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:{note}")
            _dump_section(value, pad + "  ", lines)
        elif isinstance(value, dict) and value:
            lines.append(f"{pad}{f.name}:{note}")
            lines += [f"{pad}  {_flow(k)}: {_flow(v)}" for k, v in value.items()]
        else:
            lines.append(f"{pad}{f.name}: {_flow(value)}{note}")


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def parse_override_value(text: str) -> Any:
    """A command-line value as YAML would read it, except that `3e-5` is the number it looks like
    and yes/no/on/off stay words (so `training.eval_strategy=no` means the strategy 'no')."""
    if text.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        return text
    if text.strip().startswith(("|", ">")):  # a YAML block scalar, meaningless on one line: `data.delimiter=|`
        return text
    if NUMBER.match(text.strip()):
        number = float(text)
        return int(number) if re.fullmatch(r"[+-]?\d+", text.strip()) else number
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _apply_override(raw: dict, item: str, problems: list[str]) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        problems.append(f"{item}: an override is written key=value, e.g. training.learning_rate=3e-5")
        return
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            problems.append(f"{'.'.join(parts[: i + 1])}: cannot set {key}, this is not a section")
            return
        node = child
    node[parts[-1]] = parse_override_value(value)


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


def as_recipe(recipe: Recipe | dict | str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A `Recipe` given as itself, as its dict form or as a file, with `overrides` applied and checked."""
    if isinstance(recipe, Recipe):
        return load_recipe(raw=recipe.to_dict(), overrides=overrides)
    if isinstance(recipe, dict):
        return load_recipe(raw=recipe, overrides=overrides)
    return load_recipe(recipe, overrides)
