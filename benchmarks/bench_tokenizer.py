"""Training the same WordPiece tokenizer on People's Daily through hfadapt and through `tokenizers` directly.

Both arms use the same normaliser, pre-tokeniser, trainer and settings; hfadapt adds its checks
and the `PreTrainedTokenizerFast` wrapper. sentencepiece (unigram, character coverage 0.9995)
trains on the same text as a peer. The arms run in one process, interleaved, best of N runs each;
shows the MB/s of each and its ratio to `tokenizers`.

    python benchmarks/bench_tokenizer.py [--repeat 3] [--vocab-size 12000] [--texts N]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per arm")
    parser.add_argument("--vocab-size", type=int, default=12000)
    parser.add_argument("--texts", type=int, help="the first N sentences only (a trial run); by default all")
    args = parser.parse_args()

    from hfadapt import builtin
    from hfadapt.recipe import TokenizerConfig
    from hfadapt.retraining.tokenizer import SPECIAL_TOKENS, train_tokenizer

    texts = list(builtin.load_corpus("builtin:peoples_daily")["train"]["text"])[: args.texts]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    config = TokenizerConfig(vocab_size=args.vocab_size)

    def hfadapt_arm():
        return len(train_tokenizer(texts, config))

    def tokenizers_arm():  # the same pipeline, written directly against `tokenizers`
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
        bert = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, lowercase=True, strip_accents=False
        )
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), bert])
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=args.vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##"
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return tok.get_vocab_size()

    def sentencepiece_arm():
        import sentencepiece

        with tempfile.TemporaryDirectory() as scratch:
            corpus = Path(scratch) / "corpus.txt"
            corpus.write_text("\n".join(texts), encoding="utf-8")
            sentencepiece.SentencePieceTrainer.train(
                input=str(corpus),
                model_prefix=str(Path(scratch) / "sp"),
                vocab_size=args.vocab_size,
                model_type="unigram",
                character_coverage=0.9995,
                minloglevel=2,
                hard_vocab_limit=False,
            )
            return sum(1 for _ in open(Path(scratch) / "sp.vocab", encoding="utf-8"))

    arms = {"tokenizers": tokenizers_arm, "hfadapt": hfadapt_arm}
    notes = []
    try:
        import sentencepiece  # noqa: F401

        arms["sentencepiece"] = sentencepiece_arm
    except ImportError:
        notes.append("sentencepiece is not installed (pip install sentencepiece): its row is left out.")
    rows = {name: {"seconds": float("inf")} for name in arms}
    for _ in range(args.repeat):
        for name, arm in arms.items():  # interleaved, so drift in the machine's speed hits every arm alike
            started = time.perf_counter()
            rows[name]["vocab"] = arm()
            rows[name]["seconds"] = min(rows[name]["seconds"], time.perf_counter() - started)
    for row in rows.values():
        row["mb_per_second"] = megabytes / row["seconds"]
    columns = [
        harness.Column("seconds", "seconds"),
        harness.Column("mb_per_second", "MB/s", ratio="value"),
        harness.Column("vocab", "vocab", "{:,}"),
    ]
    title = (
        f"People's Daily: {len(texts):,} sentences, {megabytes:.2f} MB of UTF-8; vocab_size {args.vocab_size}; "
        f"best of {args.repeat}, in one process."
    )
    harness.publish(__file__, [harness.Table(title, rows, "tokenizers", columns)], args.no_write, notes)


if __name__ == "__main__":
    main()
