"""The `data` section: where the examples come from, which columns hold what, and how long texts are read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hfadapt.recipe.typecheck import option

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class DataConfig:
    """Where the examples come from and which columns hold what."""

    source: str = option(
        help="a CSV/TSV/JSON/JSONL/Parquet/text file, a folder of them, a save_to_disk folder, "
        "a Hub data set id, or builtin:NAME; in-memory:sha256:... names data given to the Python API (data=), "
        "which is not saved"
    )
    subset: str | None = option(None, help="a Hub data set's configuration (subset), e.g. sst2 of glue")
    revision: str | None = option(None, help="a Hub data set's branch, tag or commit")
    files: dict[str, str] | None = option(
        None,
        help="the file each split reads, by split (train, validation, test): inside the data.source folder "
        "(or absolute paths), or in the data.source Hub repo; splits without a file are made by text hash",
    )
    text_column: str = option("text", help="the column of texts (token classification: lists of words)")
    text_pair_column: str | None = option(None, help="a second text column, for text pairs")
    label_column: str = option("label", help="the column of labels: names, numbers, lists (multi-label) or floats")
    train_split: str = option("train", help="the source's training split")
    validation_split: str = option("validation", help="the source's validation split; made by text hash if missing")
    test_split: str = option("test", help="the source's test split; made by text hash if missing")
    validation_fraction: float = option(
        0.1, help="share of the deduplicated examples set aside as validation when missing"
    )
    test_fraction: float = option(0.1, help="share of the deduplicated examples set aside as test when missing")
    max_length: int = option(128, help="tokens per text (per window with long_texts: windows)")
    long_texts: Literal["truncate", "head_tail", "windows"] = option(
        "truncate",
        help="texts longer than max_length: cut at the end (truncate); keep their first quarter and their end "
        "(head_tail); or read them whole as overlapping windows that carry the text's label, their logits "
        "averaged per text in evaluation and predict (windows). Sequence classification of single texts",
    )
    stride: int | None = option(
        None, help="long_texts: windows: tokens each window shares with the one before; empty: a quarter of max_length"
    )
    max_train_samples: int | None = option(None, help="train on a fixed sample of N examples (by text hash): tiny runs")
    max_eval_samples: int | None = option(None, help="score validation and test on a fixed sample of N examples")
    clean_given_test: bool = option(
        False,
        help="also remove duplicates and conflicting texts from a test split the source gives (by default it "
        "is kept as given, and its texts leave training and validation instead)",
    )
    encoding: str = option("utf-8", help="the text encoding of local CSV, TSV, JSON and text files, e.g. latin-1")
    drop_invalid: bool = option(
        False,
        help="leave out rows with an empty text, a missing label or a value of the wrong type (counted in "
        "metrics.json) instead of refusing the data",
    )

    def window_stride(self) -> int:
        """Tokens shared by consecutive windows: `stride`, or a quarter of `max_length`."""
        return self.stride if self.stride is not None else self.max_length // 4

    def problems(self) -> list[str]:
        found = []
        for name in ("validation_fraction", "test_fraction"):
            share = getattr(self, name)
            if not 0 <= share < 1:
                found.append(f"data.{name}: must be at least 0 and below 1, got {share}")
        if self.validation_fraction + self.test_fraction >= 1:
            found.append(
                "data.validation_fraction + data.test_fraction: leave some examples for training "
                "(their sum must be below 1)"
            )
        if self.max_length < 8:
            found.append(f"data.max_length: {self.max_length} tokens is too short; use 8 or more")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                found.append(f"data.{name}: must be 1 or more (or null for all)")
        if self.files is not None:
            names = {self.train_split, self.validation_split, self.test_split}
            unknown = sorted(set(self.files) - names)
            if unknown:
                found.append(
                    f"data.files: {', '.join(map(repr, unknown))} is not a split; name files by "
                    f"{', '.join(sorted(names))}"
                )
            elif self.train_split not in self.files:
                found.append(f"data.files: no file for the {self.train_split!r} split; training needs one")
        found += self._long_text_problems()
        return found

    def _long_text_problems(self) -> list[str]:
        found = []
        if self.stride is not None and self.long_texts != "windows":
            found.append(
                f"data.stride: only used with data.long_texts: windows (it is {self.long_texts}); remove it "
                "or set data.long_texts: windows"
            )
        if self.long_texts != "truncate" and self.text_pair_column:
            found.append(
                f"data.long_texts: {self.long_texts} reads single texts; text pairs are cut by truncation "
                "(set data.long_texts: truncate)"
            )
        if self.long_texts == "windows" and self.stride is not None and not 0 <= self.stride <= self.max_length // 2:
            found.append(
                f"data.stride: must be 0 or more and at most half of data.max_length ({self.max_length // 2}), "
                f"got {self.stride}"
            )
        return found
