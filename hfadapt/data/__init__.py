"""Data, from a source to batches: what a run trains and is scored on.

- `sources`: reading a file, folder, `save_to_disk` folder, Hub data set or built-in corpus;
- `local_files`: local files checked line by line, each problem named with its line, and how they read
  (encoding and byte-order mark, delimiter, header, missing-value markers);
- `in_memory`: data given in memory (a DataFrame, a `datasets.Dataset`, a list of dicts, an iterable of
  texts), read as a file is and named by a fingerprint of its content;
- `records`: checking each row (empty text, missing or unknown label) and encoding its label;
- `splits`: deduplicated, leak-free train, validation and test splits made by text hash;
- `tokenization`: token ids and aligned labels, the padding collator, the truncation report;
- `long_texts`: texts longer than `max_length`: head and tail, or windows pooled per text;
- `sampler`: length-grouped batches that keep each batch's label mix;
- `cache`: the prepared-data cache, keyed by data, tokenizer and settings.
"""
