"""Reading a data source: a local file or folder, a `save_to_disk` folder, a Hub data set, a built-in corpus.

Local files are read once line by line before `datasets` sees them, so that a problem is named
with its cause and place (the encoding and the byte, the line that is not JSON, the CSV row with
the wrong number of fields, an empty or header-only file), not as a generic loading error. The
same pass records the line each example starts on, for messages about single rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hfadapt import builtin
from hfadapt.errors import HfadaptError

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}
SHOWN = 5  # rows named in a message; the rest are counted


@dataclass
class Source:
    """A loaded source: its splits, and for a single local file the line each example starts on."""

    splits: object  # datasets.DatasetDict
    lines: dict[str, list[int]] = field(default_factory=dict)  # split -> line of each example
    file: str | None = None  # the local file the splits came from, for messages
    kinds: dict[str, set[str]] = field(default_factory=dict)  # JSON lines: column -> Python types of its values
    split_files: dict[str, str] = field(default_factory=dict)  # data.files: split -> its local file
    given: str | None = None  # data given in memory (in_memory.py): what it was, for messages ("the DataFrame")
    index: dict[str, Sequence] = field(default_factory=dict)  # data given in memory: split -> each row's index


IN_MEMORY = "in-memory:"  # the source of data given in memory, named by its content (in_memory.py)


def not_saved(source: str, where: str) -> HfadaptError:
    """The error for a recipe that names data given in memory (which runs do not save) without that data."""
    if where.startswith("corpus"):
        return HfadaptError(
            f"{where}: {source} names texts that were given in memory, and runs do not save them; give them "
            "again (retrain(recipe, corpus=texts)), or list files, folders or Hub data sets in corpus.sources"
        )
    return HfadaptError(
        f"{where}: {source} names data that was given in memory, and runs do not save it; give it again "
        "(finetune(recipe, data=...), evaluate(run_dir, source=...)), or give a file, folder or Hub data set "
        "(data.source=PATH, or hfadapt evaluate RUN_DIR PATH)"
    )


def load_source(
    source: str,
    revision: str | None = None,
    encoding: str = "utf-8",
    where: str = "data.source",
    subset: str | None = None,
    files: dict[str, str] | None = None,
):
    """Any supported source as a `Source`; `where` names the recipe field in messages.

    `subset` and `revision` pick a Hub data set's configuration and version; `files` names the file of
    each split inside a local folder or a Hub repo.
    """
    import datasets

    if source.startswith(IN_MEMORY):
        raise not_saved(source, where)
    path = Path(source).expanduser()
    if revision is not None and (builtin.is_builtin(source) or path.exists()):
        raise HfadaptError(f"data.revision: {source} is not a Hub data set; only a Hub data set has revisions")
    if subset is not None and (builtin.is_builtin(source) or path.is_file()):
        raise HfadaptError(
            f"data.subset: {source} has no subsets; subsets are the configurations of a Hub data set (or of a "
            "local copy of one, declared in its README.md)"
        )
    if subset is not None and path.is_dir() and files is None:  # a local copy of a Hub repo
        return Source(_load(lambda: datasets.load_dataset(str(path), subset), source, "data.subset"))
    if files is not None:
        return _load_files(source, files, encoding, subset, revision)
    if builtin.is_builtin(source):
        return Source(builtin.load_corpus(source))
    if path.is_file():
        kinds: dict[str, set[str]] = {}
        lines = check_file(path, encoding, where, kinds)
        builder, kwargs = _builder(path, encoding)
        loaded = _load(lambda: datasets.load_dataset(builder, data_files={"train": str(path)}, **kwargs), source, where)
        return Source(loaded, {"train": lines} if lines else {}, str(path), kinds)
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            loaded = _load(lambda: datasets.load_from_disk(str(path)), source, where)
            return Source(
                loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
            )
        return Source(_load_folder(path, encoding, where))
    if (
        source.startswith((".", "/", "~"))
        or os.sep in source.strip("/").replace("/", "", 1)
        or path.suffix in FILE_BUILDERS
    ):
        raise HfadaptError(
            f"{where}: {source} does not exist; give an existing file or folder, a Hub data set id, or builtin:NAME"
        )
    return Source(_load(lambda: datasets.load_dataset(source, subset, revision=revision), source, where, hub=True))


def _load_files(source: str, files: dict[str, str], encoding: str, subset: str | None, revision: str | None):
    """`data.files`: a named file per split, in a local folder (or absolute) or in a Hub data set repo."""
    import datasets

    folder = Path(source).expanduser()
    if builtin.is_builtin(source) or folder.is_file():
        raise HfadaptError(
            f"data.files: names files inside data.source, which must then be a folder or a Hub data set; "
            f"{source} is a {'built-in corpus' if builtin.is_builtin(source) else 'file'}"
        )
    if not folder.is_dir():  # a Hub repo: datasets resolves the files in it
        loaded = _load(
            lambda: datasets.load_dataset(source, subset, data_files=files, revision=revision),
            source,
            "data.files",
            hub=True,
        )
        return Source(loaded)
    paths = {split: folder / Path(name).expanduser() for split, name in files.items()}
    for split, path in paths.items():
        if not path.is_file():
            raise HfadaptError(
                f"data.files.{split}: {path} does not exist; give a file inside {folder} or an absolute path"
            )
        if path.suffix.lower() not in FILE_BUILDERS:
            raise HfadaptError(
                f"data.files.{split}: {path.name}: unsupported file type {path.suffix!r}; use one of "
                f"{', '.join(FILE_BUILDERS)}"
            )
    kinds = sorted({FILE_BUILDERS[p.suffix.lower()] for p in paths.values()})
    if len(kinds) > 1:
        raise HfadaptError(f"data.files: the files mix types ({', '.join(kinds)}); give every split the same type")
    lines, columns = {}, {}
    for split, path in paths.items():
        lines[split] = check_file(path, encoding, f"data.files.{split}", columns)
    builder, kwargs = _builder(next(iter(paths.values())), encoding)
    data_files = {split: str(path) for split, path in paths.items()}
    loaded = _load(lambda: datasets.load_dataset(builder, data_files=data_files, **kwargs), source, "data.files")
    return Source(loaded, {k: v for k, v in lines.items() if v}, None, columns, {k: str(v) for k, v in paths.items()})


def _builder(path: Path, encoding: str) -> tuple[str, dict]:
    builder = FILE_BUILDERS[path.suffix.lower()]
    kwargs: dict = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    if builder in ("csv", "json", "text"):
        kwargs["encoding"] = encoding
    return builder, kwargs


def _load_folder(path: Path, encoding: str, where: str):
    import datasets

    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    usable = [p for p in files if p.suffix.lower() in FILE_BUILDERS]
    if not usable:
        found = ", ".join(p.name for p in files[:SHOWN]) or "nothing"
        raise HfadaptError(
            f"{where}: {path} holds no data files ({', '.join(FILE_BUILDERS)}); found: {found}; "
            "give a folder of data files named by split (train.csv, test.csv), or a file"
        )
    kinds = sorted({FILE_BUILDERS[p.suffix.lower()] for p in usable})
    if len(kinds) > 1:
        raise HfadaptError(f"{where}: {path} mixes data file types ({', '.join(kinds)}); keep one type per folder")
    for file in usable:
        check_file(file, encoding, where)
    builder, kwargs = _builder(usable[0], encoding)
    return _load(lambda: datasets.load_dataset(builder, data_dir=str(path), **kwargs), str(path), where)


def _load(loader, source: str, where: str, hub: bool = False):
    try:
        return loader()
    except HfadaptError:
        raise
    except Exception as e:  # datasets raises many kinds; all mean "could not read this source"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        hint = " (offline: only data sets already in the cache load by id)" if offline and hub else ""
        cause = e if hub else (e.__cause__ or e)  # a local file's own error, not datasets' wrapper
        text = str(cause).splitlines()[0] if str(cause) else ""
        raise HfadaptError(f"{where}: could not load {source}{hint}: {type(cause).__name__}: {text}") from None


def check_file(path: Path, encoding: str, where: str, kinds: dict | None = None) -> list[int]:
    """Check a local data file line by line; return the line each example starts on (CSV, TSV, JSON lines)."""
    suffix = path.suffix.lower()
    if suffix not in FILE_BUILDERS:
        raise HfadaptError(
            f"{where}: {path} has the unsupported file type {suffix!r}; use one of {', '.join(FILE_BUILDERS)}"
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise HfadaptError(f"{where}: {path} is empty; give a file with examples")
    if suffix == ".parquet":
        if not (raw[:4] == b"PAR1" and raw[-4:] == b"PAR1"):
            raise HfadaptError(f"{where}: {path} is not a readable Parquet file (cut off, or another format)")
        return []
    if b"\x00" in raw[:8192]:
        raise HfadaptError(
            f"{where}: {path} is not a text file (it holds binary data); give a CSV, TSV, JSON lines or text file"
        )
    text = _decode(raw, path, encoding, where)
    if suffix in (".csv", ".tsv"):
        return _check_csv(text, path, "\t" if suffix == ".tsv" else ",", where)
    if suffix in (".json", ".jsonl"):
        return _check_json(text, path, where, kinds if kinds is not None else {})
    return []


def _decode(raw: bytes, path: Path, encoding: str, where: str) -> str:
    try:
        return raw.decode(encoding)
    except LookupError:
        raise HfadaptError(
            f"data.encoding: {encoding!r} is not an encoding Python knows; e.g. utf-8, latin-1"
        ) from None
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


def _check_csv(text: str, path: Path, delimiter: str, where: str) -> list[int]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header, starts, ragged, line = None, [], [], 0
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
        raise HfadaptError(
            f"{where}: {path}: the header has {len(header)} fields, but {'; '.join(ragged[:SHOWN])}{more}; "
            f"quote the fields that contain {'a tab' if delimiter == chr(9) else 'a comma'}"
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
