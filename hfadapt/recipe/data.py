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
    encoding: str = option(
        "utf-8",
        help="the text encoding of local CSV, TSV, JSON and text files, e.g. latin-1 or utf-16; a file that starts "
        "with a byte-order mark (UTF-8, UTF-16, UTF-32) is read by its mark when this is utf-8",
    )
    delimiter: str | None = option(
        None,
        help="the field delimiter of local CSV and TSV files, one character (a tab: \\t); empty: a tab for .tsv, "
        "and for .csv the first of comma, semicolon, tab and pipe that splits its first lines alike",
    )
    header: bool = option(
        True, help="local CSV and TSV files: whether the first line names the columns; false: name them in data.columns"
    )
    columns: list[str] | None = option(
        None,
        help="data.header: false: the names of the file's columns, in order, e.g. [label, text] for label<TAB>text",
    )
    missing_values: list[str] | None = option(
        None,
        help="values that mean 'missing' in a text or label, besides an empty cell and null, e.g. [NA, N/A] for "
        "files written by R or pandas; []: none, so a class named None, NA or nan is a class. Unset, a CSV or "
        "TSV label spelt like such a marker (NA, None, null, nan, ...) is refused until you choose",
    )
    drop_invalid: bool = option(
        False,
        help="leave out rows with an empty text, a missing label or a value of the wrong type (counted in "
        "metrics.json) instead of refusing the data",
    )

    def field_delimiter(self) -> str | None:
        """The delimiter character: `delimiter`, with `\\t` (as typed on a command line) read as a tab."""
        return "\t" if self.delimiter == "\\t" else self.delimiter

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
        found += self._layout_problems()
        return found

    def _layout_problems(self) -> list[str]:
        found = []
        delimiter = self.field_delimiter()
        if delimiter is not None and (len(delimiter) != 1 or delimiter.isalnum() or delimiter in '"\r\n'):
            found.append(
                f"data.delimiter: must be one character that is not a letter, digit, quote or line break, "
                f"e.g. ';' or '|' (a tab: \\t), got {self.delimiter!r}"
            )
        if not self.header and not self.columns:
            found.append(
                "data.header: false needs data.columns, the names of the file's columns in order, "
                "e.g. data.columns=[label,text]"
            )
        if self.header and self.columns is not None:
            found.append(
                "data.columns: names the columns of a file without a header line; set data.header=false too "
                "(a header line names the columns itself)"
            )
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            twice = sorted({c for c in self.columns if self.columns.count(c) > 1})
            found.append(f"data.columns: {', '.join(map(repr, twice))} named twice; give each column its own name")
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
