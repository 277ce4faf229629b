"""Reading a data source: a local file or folder, a `save_to_disk` folder, a Hub data set, a built-in corpus.

Local files are checked line by line first (`local_files`), so that a problem is named with its
cause and place, and the same pass settles how they are read (encoding, delimiter, header).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hfadapt import builtin
from hfadapt.data.local_files import FILE_BUILDERS, SHOWN, Layout, builder, check_file
from hfadapt.errors import HfadaptError


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
    delimiter: str | None = None  # local CSV and TSV files: the delimiter they were read with


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
    layout: Layout | None = None,
    where: str = "data.source",
    subset: str | None = None,
    files: dict[str, str] | None = None,
):
    """Any supported source as a `Source`; `where` names the recipe field in messages.

    `subset` and `revision` pick a Hub data set's configuration and version; `files` names the file of
    each split inside a local folder or a Hub repo; `layout` says how local files read (encoding,
    delimiter, header, missing-value markers). A relative path is read from the working folder.
    """
    import datasets

    layout = layout or Layout()
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
        return _load_files(source, files, layout, subset, revision)
    if builtin.is_builtin(source):
        _layout_unused(layout, source, "a built-in corpus")
        return Source(builtin.load_corpus(source))
    if path.is_file():
        kinds: dict[str, set[str]] = {}
        checked = check_file(path, layout, where, kinds)
        name, kwargs = builder(path, checked, layout)
        loaded = _load(lambda: datasets.load_dataset(name, data_files={"train": str(path)}, **kwargs), source, where)
        lines = {"train": checked.lines} if checked.lines else {}
        return Source(loaded, lines, str(path), kinds, delimiter=checked.delimiter)
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            _layout_unused(layout, source, "a save_to_disk folder")
            loaded = _load(lambda: datasets.load_from_disk(str(path)), source, where)
            return Source(
                loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
            )
        return _load_folder(path, layout, where)
    if (
        source.startswith((".", "/", "~"))
        or os.sep in source.strip("/").replace("/", "", 1)
        or path.suffix in FILE_BUILDERS
    ):
        relative = "" if path.is_absolute() else f" (a relative path is read from the working folder, {Path.cwd()})"
        raise HfadaptError(
            f"{where}: {source} does not exist{relative}; give an existing file or folder, a Hub data set id, "
            "or builtin:NAME"
        )
    _layout_unused(layout, source, "a Hub data set")
    return Source(_load(lambda: datasets.load_dataset(source, subset, revision=revision), source, where, hub=True))


def _layout_unused(layout: Layout, source: str, what: str) -> None:
    """data.delimiter and data.header say how to read a local CSV or TSV file; elsewhere they would be ignored."""
    if layout.delimiter is not None or not layout.header:
        setting = "data.delimiter" if layout.delimiter is not None else "data.header: false"
        raise HfadaptError(f"{setting} applies to local CSV and TSV files; {source} is {what}")


def _load_files(source: str, files: dict[str, str], layout: Layout, subset: str | None, revision: str | None):
    """`data.files`: a named file per split, in a local folder (or absolute) or in a Hub data set repo."""
    import datasets

    folder = Path(source).expanduser()
    if builtin.is_builtin(source) or folder.is_file():
        raise HfadaptError(
            f"data.files: names files inside data.source, which must then be a folder or a Hub data set; "
            f"{source} is a {'built-in corpus' if builtin.is_builtin(source) else 'file'}"
        )
    if not folder.is_dir():  # a Hub repo: datasets resolves the files in it
        _layout_unused(layout, source, "a Hub data set")
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
    checked, columns = {}, {}
    for split, path in paths.items():
        checked[split] = check_file(path, layout, f"data.files.{split}", columns)
    first = _read_alike(checked, paths, "data.files")
    name, kwargs = builder(paths[first], checked[first], layout)
    data_files = {split: str(path) for split, path in paths.items()}
    loaded = _load(lambda: datasets.load_dataset(name, data_files=data_files, **kwargs), source, "data.files")
    lines = {k: v.lines for k, v in checked.items() if v.lines}
    split_files = {k: str(v) for k, v in paths.items()}
    return Source(loaded, lines, None, columns, split_files, delimiter=checked[first].delimiter)


def _read_alike(checked: dict, paths: dict, where: str):
    """The key of the first checked file, once every file reads with the same encoding and delimiter
    (`datasets` reads them all with one)."""
    ways = {key: (c.encoding, c.delimiter) for key, c in checked.items()}
    first = next(iter(ways))
    other = next((key for key, way in ways.items() if way != ways[first]), None)
    if other is not None:

        def way(key) -> str:
            encoding, delimiter = ways[key]
            return f"{Path(paths[key]).name}: {encoding}" + (f", delimiter {delimiter!r}" if delimiter else "")

        raise HfadaptError(
            f"{where}: the files read differently ({way(first)}; {way(other)}); save them with the same "
            "encoding and delimiter"
        )
    return first


def _load_folder(path: Path, layout: Layout, where: str) -> Source:
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
    checked = {file: check_file(file, layout, where) for file in usable}
    first = _read_alike(checked, {f: f for f in usable}, where)
    name, kwargs = builder(first, checked[first], layout)
    loaded = _load(lambda: datasets.load_dataset(name, data_dir=str(path), **kwargs), str(path), where)
    return Source(loaded, delimiter=checked[first].delimiter)


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
