"""Build dataclasses from YAML-shaped dicts, checking every value against its annotation.

Every problem is appended to a list as `dotted.path: problem (hint)`, never raised, so a recipe's
mistakes are all reported at once. A field whose metadata names a `library` (TrainingArguments,
LoraConfig) is a plain mapping checked against that library's own dataclass fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import re
import types
import typing
from typing import Any, Literal

NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def option(default: Any = dataclasses.MISSING, *, help: str, factory: Any = None, **metadata: Any) -> Any:
    """A dataclass field with its one-line help; a library section also names its `library`, `defaults`, `owned`."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help, **metadata})
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from `raw`, appending every problem to `problems`; None if it cannot be built."""
    label = path or "(top level)"
    if not isinstance(raw, dict):
        problems.append(f"{label}: expected a section (a mapping of keys), got {describe(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    forbidden = getattr(cls, "FORBIDDEN", {})
    for key in raw:
        if key in forbidden:
            problems.append(f"{path}.{key}: {forbidden[key]}")
        elif key not in fields:
            problems.append(unknown_key(key, list(fields), path))
    values = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{sub}: missing (this field is required)")
            continue
        value = raw[name]
        section = section_class(hints[name])
        if section is not None and value is None and hints[name] is not section:  # an optional section left empty
            values[name] = None
        elif section is not None:
            built = build(section, value if value is not None else {}, sub, problems)
            if built is not None:
                values[name] = built
        elif "library" in f.metadata:
            values[name] = _library_section(value, sub, f.metadata, problems)
        else:
            problem = type_problem(value, hints[name])
            if problem:
                problems.append(f"{sub}: {problem}")
            else:
                values[name] = value
    try:
        return cls(**values)
    except TypeError:  # a required field was missing: already reported
        return None


def section_class(hint: Any) -> type | None:
    """The dataclass a field holds (also when it is optional), or None."""
    if dataclasses.is_dataclass(hint):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


def library_fields(name: str) -> dict[str, Any]:
    """The init fields of a library's config dataclass and their annotations."""
    if name == "TrainingArguments":
        from transformers import TrainingArguments as cls
    else:
        from peft import LoraConfig as cls
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: fall back to the raw ones
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _library_section(value: Any, path: str, metadata: typing.Mapping, problems: list[str]) -> dict:
    defaults, owned = metadata["defaults"], metadata["owned"]
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a section (a mapping of keys), got {describe(value)}")
        return dict(defaults)
    known = library_fields(metadata["library"])
    for key, item in value.items():
        if key in owned:
            problems.append(f"{path}.{key}: hfadapt sets this itself ({owned[key]})")
        elif key not in known:
            problems.append(unknown_key(key, list(known), path))
        elif (extra := metadata.get("extended", {}).get(key)) is None or item != extra:
            problem = type_problem(item, known[key])
            if problem:
                also = f" (or {extra}: hfadapt's own value)" if extra is not None else ""
                problems.append(f"{path}.{key}: {problem}{also}")
    return {**defaults, **value}


def type_problem(value: Any, hint: Any) -> str | None:
    """None when `value` fits the annotation `hint`, else what is wrong and how to fix it."""
    infinite = _non_finite(value)
    if infinite is not None:
        return f"must be a finite number, got {infinite} (YAML reads .inf and .nan as numbers)"
    if fits(value, hint):
        return None
    hint_text = ""
    if isinstance(value, str) and NUMBER.match(value.strip()) and _accepts(hint, float):
        hint_text = f" (YAML reads {value} as text: write it with a decimal point, e.g. {_as_yaml_float(value)})"
    elif isinstance(value, bool) and _accepts(hint, str):
        hint_text = " (YAML reads yes/no/on/off/true/false as booleans: put the value in quotes)"
    elif isinstance(value, int) and not isinstance(value, bool) and _accepts(hint, str):
        hint_text = " (put the value in quotes: YAML reads 0123 as the octal number 83)"
    return f"expected {expected(hint)}, got {describe(value)}{hint_text}"


def fits(value: Any, hint: Any) -> bool:
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint) and type(value) in {type(a) for a in typing.get_args(hint)}
    if hint is type(None) or hint is None:
        return value is None
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(fits(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {m.value for m in hint} or value in hint.__members__
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this checker does not understand: the library checks it


def _non_finite(value: Any) -> float | None:
    """The first infinite or NaN number in `value` (a number, or one inside a list or mapping), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    items = value if isinstance(value, list) else value.values() if isinstance(value, dict) else ()
    return next((found for item in items if (found := _non_finite(item)) is not None), None)


def _accepts(hint: Any, kind: type) -> bool:
    if hint is kind:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(arg, kind) for arg in typing.get_args(hint))
    return False


def expected(hint: Any) -> str:
    """An annotation in words: `one of 'full', 'freeze', 'lora'`, `an integer or null`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(expected(a) for a in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None) or hint is None:
        return "null"
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        if not args:
            return "a list"
        inner = expected(args[0])
        return f"a list of {inner.split(' ', 1)[1] if inner.startswith(('a ', 'an ')) else inner}s"
    if origin is dict or hint is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(hint, str(hint))


def describe(value: Any) -> str:
    """A YAML value in words, as an error message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _as_yaml_float(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exponent}" if exponent else mantissa


def unknown_key(key: Any, known: list[str], path: str) -> str:
    where = f"{path}.{key}" if path else str(key)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        return f"{where}: unknown key (did you mean '{close[0]}'?)"
    if len(known) <= 12:
        return f"{where}: unknown key (known keys: {', '.join(known)})"
    return f"{where}: unknown key"
