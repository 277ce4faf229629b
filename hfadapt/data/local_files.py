"""Local data files, read once line by line before `datasets` sees them.

A problem is named with its cause and place (the encoding and the byte, the line that is not JSON,
the CSV row with the wrong number of fields, an empty or header-only file), not as a generic
loading error. The same pass settles how the file is read, and records the line each example
starts on, for messages about single rows:

- the encoding: `data.encoding`, except that a byte-order mark (UTF-8, UTF-16, UTF-32) is honoured
  when the encoding given is the default UTF-8 or of the mark's family, and is never left in the
  first column's name;
- the delimiter of a CSV file: `data.delimiter`, or the first of `, ; tab |` that splits the file's
  first lines into the same number of fields (two or more), else a comma; a TSV file's is a tab;
- the header: the first line names the columns, or with `data.header: false` every line is an
  example and `data.columns` names the columns;
- the missing-value markers: only an empty cell is missing, plus `data.missing_values`, so a class
  named None, NA or nan reads as itself (pandas, under `datasets`' CSV loader, reads those as null).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig
from hfadapt.recipe.typecheck import NUMBER

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}
TABLES = (".csv", ".tsv")
SHOWN = 5  # rows named in a message; the rest are counted
DELIMITERS = (",", ";", "\t", "|")  # tried in this order; a comma first, so a file that reads with it keeps it
SNIFFED_ROWS = 20  # the first rows a delimiter must split alike
# Python's csv module refuses fields over 128 KiB by default; pandas, which reads the file for `datasets`, has
# no limit, and a long document in one cell is real data (a 2.6 MB text failed here)
FIELD_LIMIT = 2**31 - 1
BOMS = (  # UTF-32's marks first: UTF-32-LE's starts with UTF-16-LE's
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


@dataclass(frozen=True)
class Layout:
    """How to read local files: the data section's `encoding`, `delimiter`, `header`, `columns`, `missing_values`."""

    encoding: str = "utf-8"
    delimiter: str | None = None  # None: a TSV file's tab, or the delimiter found in a CSV file's first lines
    header: bool = True
    columns: tuple[str, ...] | None = None  # the columns' names, for a file without a header line
    missing_values: tuple[str, ...] = ()  # cell values read as missing, besides an empty cell

    @classmethod
    def of(cls, data: DataConfig) -> Layout:
        return cls(
            encoding=data.encoding,
            delimiter=data.field_delimiter(),
            header=data.header,
            columns=tuple(data.columns) if data.columns is not None else None,
            missing_values=tuple(data.missing_values or ()),
        )


@dataclass
class Checked:
    """A checked local file: the line each example starts on (CSV, TSV, JSON lines), and how it reads."""

    lines: list[int]
    encoding: str  # the layout's, or its byte-order mark's
    delimiter: str | None = None  # CSV and TSV files


def check_file(path: Path, layout: Layout, where: str, kinds: dict | None = None) -> Checked:
    """Check a local data file line by line; `where` names the setting that gave it, in messages.

    Args:
        path: a .csv, .tsv, .json, .jsonl, .parquet or .txt file.
        layout: how to read it (encoding, delimiter, header and column names).
        where: the recipe field or option that named the file (`data.source`, `--file`).
        kinds: JSON lines: filled with each column's Python value types.

    Returns:
        The line each example starts on, the encoding to read it with, and a table's delimiter.

    Raises:
        HfadaptError: the file is empty, binary, not in its encoding, or not valid for its type.
    """
    suffix = path.suffix.lower()
    if suffix not in FILE_BUILDERS:
        raise HfadaptError(
            f"{where}: {path} has the unsupported file type {suffix!r}; use one of {', '.join(FILE_BUILDERS)}"
        )
    if suffix not in TABLES and (layout.delimiter is not None or not layout.header):
        setting = "data.delimiter" if layout.delimiter is not None else "data.header: false"
        raise HfadaptError(f"{where}: {setting} applies to CSV and TSV files; {path} is a {suffix} file")
    raw = path.read_bytes()
    if not raw.strip():
        raise HfadaptError(f"{where}: {path} is empty; give a file with examples")
    if suffix == ".parquet":
        if not (raw[:4] == b"PAR1" and raw[-4:] == b"PAR1"):
            raise HfadaptError(f"{where}: {path} is not a readable Parquet file (cut off, or another format)")
        return Checked([], layout.encoding)
    encoding = _encoding(raw, path, layout.encoding, where)
    if b"\x00" in raw[:8192] and not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        wide = _utf16_without_mark(raw[:8192])
        if wide:
            raise HfadaptError(
                f"{where}: {path} looks like UTF-16 text without a byte-order mark (every other byte is 0); "
                f"give its encoding as {_setting(where, wide)}"
            )
        raise HfadaptError(
            f"{where}: {path} is not a text file (it holds binary data); give a CSV, TSV, JSON lines or text file"
        )
    text = _decode(raw, path, encoding, where)
    if suffix in TABLES:
        delimiter = layout.delimiter or ("\t" if suffix == ".tsv" else _sniff(text))
        return Checked(_check_csv(text, path, delimiter, layout, where), encoding, delimiter)
    if suffix in (".json", ".jsonl"):
        return Checked(_check_json(text, path, where, kinds if kinds is not None else {}), encoding)
    return Checked([], encoding)


def builder(path: Path, checked: Checked, layout: Layout) -> tuple[str, dict]:
    """The `datasets` builder of a checked file, and its arguments."""
    name = FILE_BUILDERS[path.suffix.lower()]
    kwargs: dict = {}
    if name in ("csv", "json", "text"):
        kwargs["encoding"] = checked.encoding
    if name == "csv":
        # read by pandas: only an empty cell (and the markers given) is missing, not "NA", "None" or "nan"
        kwargs.update(delimiter=checked.delimiter, keep_default_na=False, na_values=["", *layout.missing_values])
        if not layout.header:
            kwargs.update(header=None, column_names=list(layout.columns or ()))
    if name == "json" and codecs.lookup(checked.encoding).name.startswith(("utf-16", "utf-32")):
        # `datasets` decodes JSON in chunks cut after a b"\n", which splits a UTF-16 or UTF-32 character: one chunk
        kwargs["chunksize"] = path.stat().st_size + 1
    return name, kwargs


def looks_like_data(names: list[str]) -> bool:
    """Whether a header's names look like an example's values (a number, a sentence, a long text)."""
    return any(NUMBER.match(n.strip()) or len(n.split()) >= 3 or len(n) > 40 for n in names)


def _setting(where: str, encoding: str) -> str:
    return f"--encoding {encoding}" if where.startswith("--") else f"data.encoding={encoding}"


def _encoding(raw: bytes, path: Path, encoding: str, where: str) -> str:
    """The encoding to read `raw` with: `encoding`, or its byte-order mark's."""
    try:
        given = codecs.lookup(encoding).name
    except LookupError:
        raise HfadaptError(
            f"data.encoding: {encoding!r} is not an encoding Python knows; e.g. utf-8, latin-1"
        ) from None
    for mark, codec, name in BOMS:
        if raw.startswith(mark):
            if given == "utf-8" or given.startswith(name.lower()):
                return codec  # the mark is read, not left in the first column's name
            raise HfadaptError(
                f"{where}: {path} starts with a {name} byte-order mark, but its encoding is given as {encoding}; "
                f"give {_setting(where, name.lower())}"
            )
    return encoding


def _utf16_without_mark(sample: bytes) -> str | None:
    """utf-16-le or utf-16-be when every other byte of `sample` is 0 (ASCII text in UTF-16), else None."""
    even, odd = sample[0::2], sample[1::2]
    if not odd:
        return None
    if odd.count(0) > len(odd) / 3 and even.count(0) < len(even) / 20:
        return "utf-16-le"
    if even.count(0) > len(even) / 3 and odd.count(0) < len(odd) / 20:
        return "utf-16-be"
    return None


def _decode(raw: bytes, path: Path, encoding: str, where: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        byte = raw[e.start : e.start + 1].hex()
        raise HfadaptError(
            f"{where}: {path} is not valid {encoding}: byte 0x{byte} at line {line}, column {column}; "
            + (
                "give it with --encoding (e.g. --encoding latin-1)"
                if where.startswith("--")
                else "give its encoding as data.encoding (e.g. data.encoding=latin-1)"
            )
            + ", or save it as UTF-8"
        ) from None


def _sniff(text: str) -> str:
    """The first delimiter that splits the first rows into the same number of fields, two or more; else a comma."""
    csv.field_size_limit(FIELD_LIMIT)
    for delimiter in DELIMITERS:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        widths = set()
        try:
            for row in reader:
                if row:
                    widths.add(len(row))
                if reader.line_num >= SNIFFED_ROWS or len(widths) > 1:
                    break
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() >= 2:
            return delimiter
    return ","


def _named(delimiter: str) -> str:
    return {",": "a comma", "\t": "a tab", ";": "a semicolon", "|": "a '|'"}.get(delimiter, repr(delimiter))


def _check_csv(text: str, path: Path, delimiter: str, layout: Layout, where: str) -> list[int]:
    csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = None if layout.header else list(layout.columns or ())
    starts, ragged, line = [], [], 0
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            if not row:
                continue
            if header is None:
                header = row
                continue
            starts.append(start)
            if len(row) != len(header):
                ragged.append(f"line {start} has {len(row)}")
    except csv.Error as e:
        raise HfadaptError(f"{where}: {path} line {reader.line_num} cannot be read as CSV: {e}") from None
    if not starts:
        raise HfadaptError(f"{where}: {path} has a header line but no rows; give a file with examples")
    if ragged:
        more = f" ({len(ragged) - SHOWN} more)" if len(ragged) > SHOWN else ""
        named = _named(delimiter)
        fix = f"quote the fields that contain {named}"
        if not where.startswith("--"):
            fix += ", or give the file's delimiter as data.delimiter"
        if not layout.header:
            raise HfadaptError(
                f"{where}: {path}: data.columns names {len(header)} columns, but {'; '.join(ragged[:SHOWN])}{more} "
                f"fields, split at {named}; name each column in data.columns, or {fix}"
            )
        raise HfadaptError(
            f"{where}: {path}: the header has {len(header)} fields, but {'; '.join(ragged[:SHOWN])}{more}, "
            f"split at {named}; {fix}"
        )
    return starts


def _check_json(text: str, path: Path, where: str, kinds: dict) -> list[int]:
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise HfadaptError(
                f"{where}: {path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
            ) from None
        return []
    starts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            if _whole_object(text):
                return []
            raise HfadaptError(
                f"{where}: {path} line {number} is not valid JSON ({e.msg}, column {e.colno}); "
                "each line of a JSON lines file holds one object"
            ) from None
        if not isinstance(value, dict):
            raise HfadaptError(f"{where}: {path} line {number} is not a JSON object; each line holds one object")
        for key, item in value.items():
            for one in item if isinstance(item, list) else [item]:
                if isinstance(one, (str, int)) or (isinstance(one, float) and one == one):  # NaN is no label
                    kinds.setdefault(key, set()).add("number" if isinstance(one, (int, float)) else type(one).__name__)
        starts.append(number)
    return starts


def _whole_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False
