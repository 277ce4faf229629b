"""Training the same WordPiece tokenizer on People's Daily through hfadapt and through `tokenizers` directly.

Both arms use the same normaliser, pre-tokeniser, trainer and settings; hfadapt adds its checks
and the `PreTrainedTokenizerFast` wrapper. sentencepiece (unigram, character coverage 0.9995)
trains on the same text as a peer. Prints MB/s of each and hfadapt's ratio to `tokenizers`.

    python scripts/bench_tokenizer.py [--repeat 3] [--vocab-size 12000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per arm")
    parser.add_argument("--vocab-size", type=int, default=12000)
    args = parser.parse_args()

    from hfadapt import builtin
    from hfadapt import tokenizer as tokenizer_lib
    from hfadapt.recipe import TokenizerConfig

    texts = list(builtin.load_corpus("builtin:peoples_daily")["train"]["text"])
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    config = TokenizerConfig(vocab_size=args.vocab_size)

    def hfadapt_arm():
        return len(tokenizer_lib.train(texts, config))

    def tokenizers_arm():  # the same pipeline, written directly against `tokenizers`
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True, strip_accents=False)])
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=args.vocab_size, min_frequency=2, special_tokens=tokenizer_lib.SPECIAL_TOKENS, continuing_subword_prefix="##")
        tok.train_from_iterator(texts, trainer=trainer)
        return tok.get_vocab_size()

    def sentencepiece_arm():
        import sentencepiece

        with tempfile.TemporaryDirectory() as scratch:
            corpus = Path(scratch) / "corpus.txt"
            corpus.write_text("\n".join(texts), encoding="utf-8")
            sentencepiece.SentencePieceTrainer.train(
                input=str(corpus), model_prefix=str(Path(scratch) / "sp"), vocab_size=args.vocab_size, model_type="unigram",
                character_coverage=0.9995, minloglevel=2, hard_vocab_limit=False,
            )  # fmt: skip
            return sum(1 for _ in open(Path(scratch) / "sp.vocab", encoding="utf-8"))

    arms = {"tokenizers": tokenizers_arm, "hfadapt": hfadapt_arm}
    try:
        import sentencepiece  # noqa: F401

        arms["sentencepiece"] = sentencepiece_arm
    except ImportError:
        print("sentencepiece is not installed (pip install sentencepiece): its row is left out")
    best = {}
    sizes = {}
    for _ in range(args.repeat):
        for name, arm in arms.items():  # interleaved, so drift in the machine's speed hits every arm alike
            started = time.perf_counter()
            sizes[name] = arm()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
    print(f"People's Daily: {len(texts):,} sentences, {megabytes:.2f} MB of UTF-8; vocab_size {args.vocab_size}; best of {args.repeat}")
    print(f"{'arm':<15}{'seconds':>9}{'MB/s':>8}{'vocab':>8}")
    for name in arms:
        print(f"{name:<15}{best[name]:>9.2f}{megabytes / best[name]:>8.2f}{sizes[name]:>8}")
    print(f"ratio hfadapt/tokenizers (MB/s): {best['tokenizers'] / best['hfadapt']:.2f}")


if __name__ == "__main__":
    main()
