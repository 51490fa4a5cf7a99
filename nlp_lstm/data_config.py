"""Where the text comes from and how it is split: the data configs, in plain Python (no TensorFlow).

    DataConfig    the IMDB reviews of the sentiment app (`nlp_lstm.data.load_imdb` reads them)
    CorpusConfig  the next-word app's text: IMDB, or the user's own files (`nlp_lstm.nextword.corpus.load_corpus`)
    DataError     a data source that cannot be read (or cannot be split as asked)

The command line builds these configs, and reads the user's own corpus files with `read_text_files`
and `corpus_split`, before TensorFlow is imported, so a bad value or a corpus that cannot train
is refused in a second.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlp_lstm.checks import check_count, check_positive, check_seed


class DataError(Exception):
    """A data source that cannot be read; the message says what to do about it."""


@dataclass(frozen=True)
class DataConfig:
    """Where the reviews come from and how they are split.

    Args:
        source: None for tensorflow-datasets' imdb_reviews, or a path to an extracted aclImdb folder
            (or its parent) or to a .tar.gz of it.
        val_fraction: Fraction of train, per label, held out as the validation split, in [0, 1).
        seed: Seed of the permutations (split, order, `limit` subset), in [0, 2**32).
        limit: Keep at most this many reviews of each split read (train before the validation split
            is carved, test, unsup): for --dry-run and tests. None keeps all.
        include_unsup: Also read the 50,000 unlabelled reviews (the next-word app wants them).
        tfds_data_dir: tensorflow-datasets' data folder; None means its default
            (~/tensorflow_datasets or $TFDS_DATA_DIR).
        network_timeout_s: How long to wait for the download host before giving up, in seconds.
        verbose: Print progress of long reads and the count of undecodable files to stderr.

    Example:

    >>> from nlp_lstm.data_config import DataConfig
    >>> DataConfig(val_fraction=0.2).seed
    1337
    """

    source: str | None = None
    val_fraction: float = 0.1
    seed: int = 1337
    limit: int | None = None
    include_unsup: bool = True
    tfds_data_dir: str | None = None
    network_timeout_s: float = 3.0
    verbose: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:  # NaN fails this too
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        check_seed("seed", self.seed)
        check_count("limit", self.limit, none_ok=True)
        check_positive("network_timeout_s", self.network_timeout_s)


@dataclass(frozen=True)
class CorpusConfig:
    """Where the next-word app's text comes from: IMDB (default) or the user's own UTF-8 files.

    Args:
        data: IMDB source: None for tensorflow-datasets, or an aclImdb folder or .tar.gz (`--data`).
        files: The user's own text files (`--corpus`); each blank-line-separated paragraph is one
            document. Non-empty means IMDB is not read.
        val_fraction: IMDB: fraction of the labelled train reviews held out for validation (the
            unsup reviews all train). Files: fraction of the paragraphs.
        test_fraction: Files only: fraction of the paragraphs held out for evaluation (IMDB has a test split).
        limit: Read at most this many reviews per split (IMDB), or paragraphs (files): quick runs.
        seed: Seed of the splits, in [0, 2**32).

    Example:

    >>> from nlp_lstm.data_config import CorpusConfig
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
        if not 0.0 < self.val_fraction < 1.0 or not 0.0 < self.test_fraction < 1.0:  # NaN fails this too
            raise ValueError(
                f"val_fraction and test_fraction must be in (0, 1), got {self.val_fraction!r} and "
                f"{self.test_fraction!r}"
            )
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must leave text to train on")
        check_count("limit", self.limit, none_ok=True)
        check_seed("seed", self.seed)

    @property
    def source_name(self) -> str:
        """'imdb' or 'files'."""
        return "files" if self.files else "imdb"


def decode_text(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text of `raw` and whether any byte had to be replaced (by U+FFFD)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def read_text_files(paths: Sequence[str | os.PathLike]) -> tuple[list[str], int]:
    """Reads a user's own corpus: one text per file, UTF-8, undecodable bytes replaced by U+FFFD.

    Returns:
        (texts in the order of `paths`, number of files that held bytes that are not UTF-8).

    Raises:
        DataError: A path is missing or is not a file.

    Example:

    >>> import pathlib, tempfile
    >>> from nlp_lstm.data_config import read_text_files
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.txt"
    >>> _ = path.write_bytes(b"caf\\xe9 au lait")  # Latin-1, not UTF-8
    >>> read_text_files([path])
    (['caf\\ufffd au lait'], 1)
    """
    texts, n_replaced = [], 0
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise DataError(f"corpus file {path} {what}; pass paths of UTF-8 text files")
        text, replaced = decode_text(path.read_bytes())
        texts.append(text)
        n_replaced += replaced
    return texts, n_replaced


def split_paragraphs(text: str) -> list[str]:
    """The blank-line-separated paragraphs of `text`, stripped, empty ones dropped.

    Example:

    >>> from nlp_lstm.data_config import split_paragraphs
    >>> split_paragraphs("One.\\nStill one.\\n\\n  \\nTwo.\\n")
    ['One.\\nStill one.', 'Two.']
    """
    return [p.strip() for p in re.split(r"\n[ \t\r\f\v]*\n", text) if p.strip()]


def corpus_split(n_documents: int, config: CorpusConfig) -> dict[str, np.ndarray]:
    """Which documents of a files corpus go to val, test and train (indices; seeded, `limit` applied).

    Raises:
        DataError: Fewer than 3 documents, or none left for training.

    Example:

    >>> from nlp_lstm.data_config import CorpusConfig, corpus_split
    >>> {name: len(part) for name, part in corpus_split(40, CorpusConfig(files=("a.txt",))).items()}
    {'val': 1, 'test': 2, 'train': 37}
    """
    if n_documents < 3:
        raise DataError(
            f"the corpus files hold {n_documents} paragraph(s); the next-word app needs at least 3 "
            f"(blank-line-separated) to train, validate and test on"
        )
    order = np.random.default_rng(config.seed).permutation(n_documents)[: config.limit]
    n_val = max(1, round(config.val_fraction * len(order)))
    n_test = max(1, round(config.test_fraction * len(order)))
    parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    if len(parts["train"]) == 0:
        raise DataError(f"the corpus holds {len(order)} paragraphs, too few to leave any for training")
    return parts
