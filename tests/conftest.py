"""Shared fixtures: a tiny random BERT and a small, learnable sentiment data set, built in the test run."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before any Hugging Face import: no test touches the network
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import csv
import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

POSITIVE = ["good", "great", "wonderful", "superb", "lovely", "brilliant", "moving", "charming", "fresh", "smart"]
NEGATIVE = ["bad", "awful", "dull", "boring", "tedious", "clumsy", "stale", "weak", "messy", "flat"]
FILLER = [
    "the",
    "film",
    "movie",
    "story",
    "was",
    "really",
    "quite",
    "a",
    "plot",
    "with",
    "acting",
    "and",
    "very",
    "its",
    "cast",
]


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    """Short reviews whose label is given by their sentiment words: a task a tiny model can learn."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.random() < 0.5
        words = rng.sample(FILLER, 5) + rng.sample(POSITIVE if label else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" {i}", "label": "positive" if label else "negative"})
    return rows


def ner_rows(n: int) -> list[dict]:
    """Sentences with one city each, tagged S-LOC: a token task a tiny model can learn."""
    return [
        {
            "tokens": ["we", "went", "to", ["paris", "london", "berlin"][i % 3], "today", str(i)],
            "tags": ["O", "O", "O", "S-LOC", "O", "O"],
        }
        for i in range(n)
    ]


CHINESE = [
    "中共中央总书记发表新年讲话",
    "这本书的内容很好看",
    "我们的国家正在发展",
    "今天北京的天气很好",
    "酒店的服务非常好",
] * 20


def chinese_retraining(checkpoint: Path, folder: Path, steps: int) -> dict:
    """A whole retraining recipe on the tiny model: a Chinese corpus file plus labelled Chinese data."""
    import json

    (folder / "corpus.txt").write_text("\n".join(f"{t}{i}" for i, t in enumerate(CHINESE * 3)))
    rows = [{"text": t + str(i), "label": "pos" if "好" in t else "neg"} for i, t in enumerate(CHINESE)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {
        "model": {"name_or_path": str(checkpoint)},
        "data": {"source": str(folder / "data.jsonl"), "max_length": 32},
        "corpus": {"sources": [str(folder / "corpus.txt"), str(folder / "data.jsonl")], "validation_fraction": 0.1},
        "tokenizer": {"vocab_size": 200, "min_frequency": 1},
        "pretrain": {
            "block_size": 32,
            "training": {"max_steps": steps, "disable_tqdm": True, "eval_strategy": "no", "save_strategy": "no"},
        },
        "training": {"max_steps": steps, "disable_tqdm": True},
        "output": {"dir": str(folder / "run")},
    }


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def one_torch_thread():
    """One torch thread: tiny models' steps are too small to share; on a 2-core machine busy with
    other work, two threads ran them about 10x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def prepared_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test prepares data in a cache folder of its own: none writes to ~/.cache, none reuses another's."""
    folder = tmp_path_factory.mktemp("hfadapt-cache")
    monkeypatch.setenv("HFADAPT_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BertModel with a WordPiece tokenizer trained on the test texts."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    texts = [r["text"] for r in sentiment_rows(400, seed=1)] + ["当 希 望 工 程 中 国 北 京 上 海"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", sentiment_rows(400))


@pytest.fixture
def tiny_recipe(tiny_checkpoint, sentiment_csv, tmp_path):
    """A recipe dict for a fast run on the tiny model; tests change what they test."""

    def make(**sections):
        raw = {
            "model": {"name_or_path": str(tiny_checkpoint)},
            "data": {"source": str(sentiment_csv), "max_length": 32},
            "training": {
                "num_train_epochs": 2,
                "learning_rate": 5.0e-3,
                "per_device_train_batch_size": 16,
                "logging_steps": 5,
                "disable_tqdm": True,
            },
            "output": {"dir": str(tmp_path / "run")},
        }
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value}
        return raw

    return make


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now, for a launcher's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    """A slow test is end to end too: `-m "not integration"` (the unit tier) never runs it, though a
    command-line -m replaces the `-m 'not slow'` of pyproject.toml's addopts."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.integration)


def run_workers(
    launcher: list[str], side: Path, command: tuple[str, ...], env: dict[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`launcher` (an `accelerate launch` command line and its options) running tests/dist_worker.py, which
    records in the new folder SIDE what each rank trained: the finished launch, and the records in rank order."""
    import json

    repo = Path(__file__).parent.parent
    side.mkdir()
    done = subprocess.run(
        [*launcher, str(repo / "tests" / "dist_worker.py"), str(side), *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=timeout,
    )
    return done, [json.loads(p.read_text()) for p in sorted(side.glob("*.json"))]


def wait_for_checkpoint(checkpoints: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Return once a complete checkpoint (one with its trainer_state.json) is in CHECKPOINTS; fail the test
    if `process` ends first or none appears within `timeout` seconds (the process is then killed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any((c / "trainer_state.json").exists() for c in checkpoints.glob("checkpoint-*")):
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before any checkpoint: {process.stderr.read()[-3000:]}")
        time.sleep(0.01)
    process.kill()
    pytest.fail(f"no checkpoint appeared in {checkpoints}")
