"""The recipe reference, docs/recipe.md, generated from the schema: every field, its type, default and help.

    python -m hfadapt.recipe.reference docs/recipe.md     # rewrite it after changing the schema

A test fails when the file is out of date.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path

from hfadapt.recipe import schema
from hfadapt.recipe.typecheck import expected, section_class

HEADER = """# Recipe reference

Generated from the schema (`hfadapt/recipe/schema.py`) by `python -m hfadapt.recipe.reference docs/recipe.md`;
do not edit by hand. `hfadapt validate RECIPE` prints a recipe resolved, with the same help beside each field.

A recipe is one YAML file with these sections. Required fields have no default. Any field can be set
from the command line as `section.field=value`, e.g. `training.learning_rate=3e-5`.
"""


def render() -> str:
    """The whole reference as Markdown."""
    parts = [HEADER]
    seen: set[type] = set()
    _section(schema.Recipe, "", parts, seen)
    return "\n".join(parts)


def _section(cls: type, path: str, parts: list[str], seen: set[type]) -> None:
    hints = typing.get_type_hints(cls)
    title = f"`{path}`" if path else "Top level"
    parts += [
        f"## {title}",
        "",
        (cls.__doc__ or "").strip().split("\n\n")[0],  # the summary; the field table below is the rest
        "",
        "| field | type | default | help |",
        "|---|---|---|---|",
    ]
    nested = []
    for f in dataclasses.fields(cls):
        sub = f"{path}.{f.name}" if path else f.name
        inner = section_class(hints[f.name])
        if inner is not None:
            kind = "section" + (" (optional)" if inner is not hints[f.name] else "")
            nested.append((inner, sub))
        elif "library" in f.metadata:
            kind = f"mapping of {f.metadata['library']} fields"
        else:
            kind = expected(hints[f.name])
        parts.append(f"| `{f.name}` | {kind} | {_default(f)} | {f.metadata.get('help', '')} |")
        if "library" in f.metadata and f.metadata["defaults"]:
            defaults = ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in f.metadata["defaults"].items())
            parts.append(f"| | | | hfadapt's defaults: {defaults} |")
        if "owned" in f.metadata:
            parts.append(f"| | | | set by hfadapt, refused here: {', '.join(f'`{k}`' for k in f.metadata['owned'])} |")
    parts.append("")
    for inner, sub in nested:
        if inner not in seen:
            seen.add(inner)
            _section(inner, sub, parts, seen)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return (
            "`null`"
            if f.default is None
            else f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
        )
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            return "(its defaults)"
        return "(see below)" if "library" in f.metadata and value else f"`{value}`"
    return "required"


def main(argv: list[str]) -> int:
    text = render()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
