"""The exception types that mean "the user's input is wrong"."""

from __future__ import annotations


class HfadaptError(Exception):
    """A problem with what the user asked for, worded as the problem and its fix.

    The CLI prints the message and exits with status 2, without a traceback. Anything else
    that escapes is a bug in hfadapt, and keeps its traceback.

    Args:
        message: the problem and its fix, e.g. `"adapt.freeze.layers: 5 layers asked, but the model has 2 ...;
            use at most 2"`.
    """


class RecipeError(HfadaptError):
    """Every problem found in a recipe, each as `dotted.path: problem (hint)`.

    Args:
        problems: the problems, one line each (kept as `.problems`).
        source: what was read (the recipe's path), the message's first word.
    """

    def __init__(self, problems: list[str], source: str = "recipe"):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}\n{lines}")
