"""The next-word app's text: IMDB reviews or the user's own files, split into train / val / test.

    IMDB (nlp_lstm.data): train + unsup reviews -> train, a seeded slice of labelled train -> val,
                          test -> test (held out for evaluation)
    --corpus FILE ...:    blank-line-separated paragraphs -> documents, seeded split by fraction

Nothing here knows about models; every split is a tf.data.Dataset of tf.string texts. The config and
the split of the files (which documents go where) are in `nlp_lstm.data_config`, free of TensorFlow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import tensorflow as tf

from nlp_lstm.data import load_imdb
from nlp_lstm.data_config import (
    CorpusConfig,
    DataConfig,
    corpus_split,
    read_text_files,
    split_paragraphs,
)


@dataclass(frozen=True)
class Corpus:
    """Texts (tf.string datasets) to train, validate and test on, with their sizes."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    sizes: dict[str, int]
    n_replaced: int = 0


def load_corpus(config: CorpusConfig, verbose: bool = True) -> Corpus:
    """Reads the corpus and splits it (seeded): IMDB train + unsup / val slice / test, or paragraphs of files.

    Raises:
        DataError: The data cannot be read, or the files hold fewer than 3 paragraphs.

    Example (``acl_imdb``: a tiny aclImdb folder the test makes):

    >>> from nlp_lstm.data_config import CorpusConfig
    >>> from nlp_lstm.nextword.corpus import load_corpus
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
    parts = corpus_split(len(documents), config)
    datasets = {
        name: tf.data.Dataset.from_tensor_slices(tf.constant([documents[i] for i in idx], tf.string, [len(idx)]))
        for name, idx in parts.items()
    }
    return Corpus(datasets["train"], datasets["val"], datasets["test"],
                  {name: len(idx) for name, idx in parts.items()}, n_replaced)  # fmt: skip
