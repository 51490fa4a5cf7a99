"""The next-word app's text: IMDB reviews or the user's own files, split into train / val / test.

    IMDB (nlp_lstm.data): train + unsup reviews -> train, a seeded slice of labelled train -> val,
                          test -> test (held out for evaluation)
    --corpus FILE ...:    blank-line-separated paragraphs -> documents, seeded split by fraction

Nothing here knows about models; every split is a tf.data.Dataset of tf.string texts.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nlp_lstm.data import DataConfig, DataError, load_imdb, read_text_files


@dataclass(frozen=True)
class CorpusConfig:
    """Where the text comes from: IMDB (default) or the user's own UTF-8 files.

    Args:
        data: IMDB source: None for tensorflow-datasets, or an aclImdb folder or .tar.gz (`--data`).
        files: The user's own text files (`--corpus`); each blank-line-separated paragraph is one
            document. Non-empty means IMDB is not read.
        val_fraction: IMDB: fraction of the labelled train reviews held out for validation (the
            unsup reviews all train). Files: fraction of the paragraphs.
        test_fraction: Files only: fraction of the paragraphs held out for evaluation (IMDB has a test split).
        limit: Read at most this many reviews per split (IMDB), or paragraphs (files): quick runs.
        seed: Seed of the splits.

    Example:

    >>> from nlp_lstm.corpus import CorpusConfig
    >>> CorpusConfig(files=("book.txt",)).source_name
    'files'
    """

    data: str | None = None
    files: tuple[str, ...] = ()
    val_fraction: float = 0.01
    test_fraction: float = 0.05
    limit: int | None = None
    seed: int = 1337

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(str(f) for f in self.files))
        if not 0.0 < self.val_fraction < 1.0 or not 0.0 < self.test_fraction < 1.0:
            raise ValueError("val_fraction and test_fraction must be in (0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must leave text to train on")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be None or >= 1, got {self.limit}")

    @property
    def source_name(self) -> str:
        """'imdb' or 'files'."""
        return "files" if self.files else "imdb"


@dataclass(frozen=True)
class Corpus:
    """Texts (tf.string datasets) to train, validate and test on, with their sizes."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    sizes: dict[str, int]
    n_replaced: int = 0


def split_paragraphs(text: str) -> list[str]:
    """The blank-line-separated paragraphs of `text`, stripped, empty ones dropped.

    Example:

    >>> from nlp_lstm.corpus import split_paragraphs
    >>> split_paragraphs("One.\\nStill one.\\n\\n  \\nTwo.\\n")
    ['One.\\nStill one.', 'Two.']
    """
    return [p.strip() for p in re.split(r"\n[ \t\r\f\v]*\n", text) if p.strip()]


def load_corpus(config: CorpusConfig, verbose: bool = True) -> Corpus:
    """Reads the corpus and splits it (seeded): IMDB train + unsup / val slice / test, or paragraphs of files.

    Raises:
        DataError: The data cannot be read, or the files hold fewer than 3 paragraphs.

    Example (``acl_imdb``: a tiny aclImdb folder the test makes):

    >>> from nlp_lstm.corpus import CorpusConfig, load_corpus
    >>> load_corpus(CorpusConfig(data=acl_imdb, val_fraction=0.25), verbose=False).sizes
    {'train': 9, 'val': 2, 'test': 4}
    """
    if not config.files:
        splits = load_imdb(
            DataConfig(source=config.data, val_fraction=config.val_fraction, seed=config.seed,
                       limit=config.limit, include_unsup=True, verbose=verbose)
        )  # fmt: skip
        sizes = {"train": splits.sizes["train"] + splits.sizes["unsup"], "val": splits.sizes["val"],
                 "test": splits.sizes["test"]}  # fmt: skip
        train = splits.texts("train", "unsup")
        return Corpus(train, splits.texts("val"), splits.texts("test"), sizes, splits.n_replaced)
    texts, n_replaced = read_text_files(config.files)
    if verbose:
        print(f"read {len(texts)} corpus files; {n_replaced} with bytes that are not UTF-8 (replaced by U+FFFD)",
              file=sys.stderr)  # fmt: skip
    documents = [p for text in texts for p in split_paragraphs(text)]
    if len(documents) < 3:
        raise DataError(
            f"the corpus files hold {len(documents)} paragraph(s); the next-word app needs at least 3 "
            f"(blank-line-separated) to train, validate and test on"
        )
    order = np.random.default_rng(config.seed).permutation(len(documents))[: config.limit]
    n_val = max(1, round(config.val_fraction * len(order)))
    n_test = max(1, round(config.test_fraction * len(order)))
    parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    if len(parts["train"]) == 0:
        raise DataError(f"the corpus holds {len(order)} paragraphs, too few to leave any for training")
    datasets = {
        name: tf.data.Dataset.from_tensor_slices(tf.constant([documents[i] for i in idx], tf.string, [len(idx)]))
        for name, idx in parts.items()
    }
    return Corpus(datasets["train"], datasets["val"], datasets["test"],
                  {name: len(idx) for name, idx in parts.items()}, n_replaced)  # fmt: skip
