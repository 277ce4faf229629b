"""The search space of `hfadapt search`: dotted recipe keys, each a range or choices, checked in the recipe.

Written on the command line as `--space KEY=SPEC`: `LOW..HIGH` (whole numbers when both ends are
written as whole numbers; `:log` for a log scale) or choices `a,b,c`, each value read as a
`key=value` override reads it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfadapt.errors import HfadaptError, RecipeError
from hfadapt.recipe import Recipe, parse_override_value

EXAMPLE = "e.g. --space training.learning_rate=1e-5..1e-3:log or --space adapt.lora.r=4,8,16"
# Every combination of the space's ends and choices is checked before any training, up to this many
# (about 3 ms each); beyond it each value is checked alone, and each trial's recipe before it trains.
MAX_COMBINATIONS = 256
OUTSIDE = object()  # a value read back from a trial's recipe that the space does not hold


@dataclass(frozen=True)
class Dimension:
    """One searched recipe key: numbers from `low` to `high` (on a log scale with `log`), or `choices`."""

    key: str
    spec: str
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: tuple = ()

    def probes(self) -> list:
        """The values checked in the recipe before the search starts: the choices, or the range's ends."""
        return list(self.choices) if self.choices else [self.low, self.high]

    def value(self, found: Any) -> Any:
        """`found` (a value read back from a trial's recipe) as this dimension gives it, or `OUTSIDE`."""
        if self.choices:
            return self.choices[self.choices.index(found)] if found in self.choices else OUTSIDE
        if isinstance(found, bool) or not isinstance(found, (int, float)) or not self.low <= found <= self.high:
            return OUTSIDE
        return int(found) if isinstance(self.low, int) and isinstance(self.high, int) else found

    def distribution(self):
        """The Optuna distribution: whole numbers when both ends are written as whole numbers."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices:
            return CategoricalDistribution(self.choices)
        if isinstance(self.low, int) and isinstance(self.high, int):
            return IntDistribution(self.low, self.high, log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)


def parse_space(space: dict[str, str] | list[str] | tuple[str, ...]) -> list[Dimension]:
    """The search space from `key=SPEC` strings (or a mapping of key to SPEC), every problem reported at once.

    Raises:
        HfadaptError: a spec that is neither `LOW..HIGH[:log]` nor choices `a,b,c`, or a key given twice.
    """
    if isinstance(space, dict):
        items = [(str(k), str(v)) for k, v in space.items()]
    elif isinstance(space, (list, tuple)):
        items = [(k.strip(), v.strip()) for k, sep, v in (str(i).partition("=") for i in space)]
        bad = [str(i) for i in space if "=" not in str(i) or not str(i).partition("=")[0].strip()]
        if bad:
            raise HfadaptError(f"--space {bad[0]}: write KEY=SPEC, {EXAMPLE}")
    else:
        raise HfadaptError(f"--space: expected KEY=SPEC strings or a mapping of keys to specs, got {space!r}")
    if not items:
        raise HfadaptError(f"--space: give at least one key to search, {EXAMPLE}")
    keys = [k for k, _ in items]
    problems = [f"{k}: given more than once; give each key once" for k in dict.fromkeys(keys) if keys.count(k) > 1]
    dimensions = []
    for key, spec in items:
        if keys.count(key) > 1:
            continue
        if key == "output" or key.startswith("output."):
            problems.append(f"{key}: the search sets each trial's output; choose the search's folder with --output")
            continue
        dimension = _dimension(key, spec, problems)
        if dimension is not None:
            dimensions.append(dimension)
    if problems:
        raise HfadaptError(_problems(problems))
    return dimensions


def _dimension(key: str, spec: str, problems: list[str]) -> Dimension | None:
    where = f"{key}={spec}"
    body, colon, scale = spec.partition(":")
    if colon and scale != "log":
        problems.append(f"{where}: the only scale is :log, as in LOW..HIGH:log")
        return None
    if ".." in body:
        low, high = (parse_override_value(part.strip()) for part in body.split("..", 1))
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (low, high)):
            problems.append(f"{where}: a range is LOW..HIGH of two numbers, e.g. 1e-5..1e-3")
        elif not low < high:
            problems.append(f"{where}: LOW must be below HIGH")
        elif colon and low <= 0:
            problems.append(f"{where}: a log scale needs LOW above 0")
        else:
            return Dimension(key, spec, low, high, log=bool(colon))
        return None
    if colon:
        problems.append(f"{where}: :log applies to a range LOW..HIGH, not to choices")
        return None
    texts = [part.strip() for part in body.split(",")]
    if len(texts) < 2:
        problems.append(
            f"{where}: one value is not a search; give a range LOW..HIGH or choices a,b (or set it as key=value)"
        )
        return None
    if "" in texts:
        problems.append(f"{where}: an empty choice; write choices as a,b,c")
        return None
    choices = tuple(parse_override_value(t) for t in texts)
    repeated = [t for i, t in enumerate(texts) if choices.index(choices[i]) != i]
    if repeated:
        problems.append(f"{where}: {repeated[0]} is given more than once")
        return None
    return Dimension(key, spec, choices=choices)


def check_space(recipe: Recipe, dimensions: list[Dimension]) -> None:
    """Refuse, before any training, a key the recipe does not have or a value it refuses, alone or combined.

    Raises:
        HfadaptError: every problem, each with the key and value that caused it.
    """
    problems: list[str] = []
    for dimension in dimensions:
        for value in dimension.probes():
            for problem in _refused(recipe, {dimension.key: value}):
                # a key the recipe lacks is wrong whatever the value: said once, without one
                unknown = "unknown key" in problem or "not a section" in problem
                problems.append(problem if unknown else f"{dimension.key}={show(value)}: {problem}")
    if not problems and math.prod(len(d.probes()) for d in dimensions) <= MAX_COMBINATIONS:
        for values in itertools.product(*(d.probes() for d in dimensions)):
            params = {d.key: v for d, v in zip(dimensions, values, strict=True)}
            problems += [f"with {assignments(params)}: {p}" for p in _refused(recipe, params)]
    if problems:
        raise HfadaptError(_problems(list(dict.fromkeys(problems))))


def _refused(recipe: Recipe, params: dict[str, Any]) -> list[str]:
    try:
        recipe.updated(_nested(params))
    except RecipeError as e:
        return e.problems
    return []


def trial_recipe(recipe: Recipe, params: dict[str, Any], folder: str | Path) -> Recipe:
    """The recipe of one trial: `params` (dotted key -> value) set, its run written to `folder`."""
    return recipe.updated(_nested(params)).with_output(folder)


def _nested(params: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key, value in params.items():
        *sections, name = key.split(".")
        node = changes
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return changes


def value_at(raw: dict[str, Any], key: str) -> Any:
    """The value at a dotted `key` of a recipe's dict form, or None where it has none."""
    for part in key.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def show(value: Any) -> str:
    """A value as the search's tables and messages write it: floats to 4 significant digits, None as '-'."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def assignments(params: dict[str, Any]) -> str:
    """`key=value, ...` for a trial's values."""
    return ", ".join(f"{k}={show(v)}" for k, v in params.items())


def _problems(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"--space {problems[0]}"
    return f"--space: {len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)
