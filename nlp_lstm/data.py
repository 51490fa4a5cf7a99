"""IMDB reviews as `tf.data.Dataset`s of (text: tf.string, label: tf.int64).

Two sources give the same thing:

- tensorflow-datasets' `imdb_reviews/plain_text` (the default, `DataConfig(source=None)`);
- a local copy: an extracted `aclImdb` folder or a `.tar.gz` of it (`DataConfig(source=PATH)`), the
  layout of the official archive: `train/{neg,pos,unsup}/` and `test/{neg,pos}/`, one review per
  `<id>_<rating>.txt` file.

Labels are pinned once, here, for every source and split: neg = 0, pos = 1, unlabelled (unsup) = -1.
Reviews are read into memory (the whole data set is ~130 MB of text), in the order of their paths,
then permuted with the config's seed, so every split is reproducible and never sorted by class.
The validation split is carved out of train, stratified by label; test is for final figures only.

Nothing here knows about models.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import sys
import tarfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tensorflow as tf

from nlp_lstm.data_config import (
    DataConfig,
    DataError,
    decode_text,
)

LABEL_NAMES: tuple[str, ...] = ("neg", "pos")  # index = label: neg = 0, pos = 1
UNSUP_LABEL = -1
# The one file tfds's imdb_reviews downloads; probed with a HEAD request to fail fast offline.
IMDB_DOWNLOAD_URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_LABELLED_DIRS = ("train/neg", "train/pos", "test/neg", "test/pos")
_UNSUP_DIR = "train/unsup"
_DIR_LABELS = {"neg": 0, "pos": 1, "unsup": UNSUP_LABEL}
_PASS_DATA_HINT = (
    f"pass --data PATH, where PATH is a local aclImdb folder or a .tar.gz of it (the archive is {IMDB_DOWNLOAD_URL})"
)


@dataclass(frozen=True)
class Reviews:
    """Reviews held in memory: `texts[i]` has label `labels[i]` (0 neg, 1 pos, -1 unlabelled).

    Example:

    >>> from nlp_lstm.data import Reviews
    >>> reviews = Reviews(["Loved it.", "Dull."], [1, 0])
    >>> [(t.numpy(), int(l)) for t, l in reviews.to_dataset()]
    [(b'Loved it.', 1), (b'Dull.', 0)]
    """

    texts: list[str]
    labels: np.ndarray = field(repr=False)  # (n,) int64

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64).reshape(-1))
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: np.ndarray) -> Reviews:
        """The reviews at `indices`, in that order."""
        return Reviews([self.texts[i] for i in indices], self.labels[indices])

    def to_dataset(self) -> tf.data.Dataset:
        """A dataset of (text: tf.string scalar, label: tf.int64 scalar) elements."""
        return tf.data.Dataset.from_tensor_slices(
            (tf.constant(self.texts, dtype=tf.string, shape=[len(self)]), tf.constant(self.labels))
        )


@dataclass(frozen=True)
class ImdbSplits:
    """The splits of IMDB, each a dataset of (text, label), with their sizes.

    `unsup` is None unless `DataConfig.include_unsup`. `n_replaced` counts reviews that held bytes
    that are not UTF-8 (replaced by U+FFFD). The next-word app takes `texts("train", "unsup")` to
    train and `texts("test")` to evaluate; the classifier takes `train`, `val` and, once, `test`.

    Example (``acl_imdb`` is a path to an aclImdb folder; the test passes a tiny one):

    >>> from nlp_lstm.data_config import DataConfig
    >>> from nlp_lstm.data import load_imdb
    >>> splits = load_imdb(DataConfig(source=acl_imdb, val_fraction=0.25, verbose=False))
    >>> splits.sizes
    {'train': 6, 'val': 2, 'test': 4, 'unsup': 3}
    >>> sorted({int(label) for _, label in splits.train})
    [0, 1]
    >>> splits.texts("train", "unsup").element_spec
    TensorSpec(shape=(), dtype=tf.string, name=None)
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    unsup: tf.data.Dataset | None
    sizes: dict[str, int]
    n_replaced: int = 0

    def texts(self, *names: str) -> tf.data.Dataset:
        """The texts (no labels) of the named splits, concatenated in the order given."""
        if not names:
            raise ValueError("name at least one split: 'train', 'val', 'test' or 'unsup'")
        datasets = []
        for name in names:
            if name not in ("train", "val", "test", "unsup"):
                raise ValueError(f"unknown split {name!r}; expected train, val, test or unsup")
            ds = getattr(self, name)
            if ds is None:
                raise ValueError(f"split {name!r} was not loaded: set DataConfig(include_unsup=True)")
            datasets.append(ds.map(lambda text, label: text))
        result = datasets[0]
        for ds in datasets[1:]:
            result = result.concatenate(ds)
        return result


class _Progress:
    """Prints '<what>: <n> files (<s> s)' to stderr at most every `every_s` s, then a last line."""

    def __init__(self, what: str, verbose: bool, every_s: float = 2.0):
        self.what, self.verbose, self.every_s = what, verbose, every_s
        self.start = self.last = time.perf_counter()
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        now = time.perf_counter()
        if self.verbose and now - self.last >= self.every_s:
            self.last = now
            print(f"{self.what}: {self.count} files ({now - self.start:.1f} s)", file=sys.stderr)

    def done(self, n_replaced: int) -> None:
        if self.verbose:
            print(
                f"{self.what}: {self.count} reviews in {time.perf_counter() - self.start:.1f} s; "
                f"{n_replaced} with bytes that are not UTF-8 (replaced by U+FFFD)",
                file=sys.stderr,
            )


def _review_folder(parts: Sequence[str], wanted: set[str]) -> str | None:
    """'train/pos' for a path ending in a wanted <split>/<class>/ and a .txt name, else None."""
    if len(parts) < 3 or not parts[-1].endswith(".txt"):
        return None
    folder = f"{parts[-3]}/{parts[-2]}"
    return folder if folder in wanted else None


def _iter_folder(root: Path, wanted: set[str]) -> Iterator[tuple[str, str, bytes]]:
    """(folder, file name, bytes) of every review under root."""
    for folder in sorted(wanted):
        for name in os.listdir(root / folder):
            if name.endswith(".txt"):
                yield folder, name, (root / folder / name).read_bytes()


def _decompressed(file: BinaryIO) -> BinaryIO:
    """`file` read through the decompressor its first bytes name (gzip, bzip2, xz), or as it is."""
    magic = file.read(6)
    file.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=file)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(file)
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(file)
    return file


def _iter_archive(path: Path, wanted: set[str]) -> Iterator[tuple[str, str, bytes]]:
    """(folder, file name, bytes) of every review in the archive, in the archive's order."""
    with open(path, "rb") as file, _decompressed(file) as stream:
        # Stream mode ('r|'): one pass over the bytes, nothing written to disk.
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                parts = member.name.split("/")
                folder = _review_folder(parts, wanted) if member.isfile() else None
                if folder is not None:
                    yield folder, parts[-1], archive.extractfile(member).read()
        # tarfile stops at the first empty header, and a compressed stream cut short can end in
        # one: reading the stream to its end makes the decompressor check its end marker and
        # checksum (EOFError or BadGzipFile), so a truncated download is never half-read.
        while stream.read(1 << 20):
            pass


def _layout_error(where: Path, missing: Iterable[str], expected: Sequence[str]) -> DataError:
    return DataError(
        f"{where} does not have the aclImdb layout: missing or empty {', '.join(sorted(missing))}. "
        f"Expected the subfolders {', '.join(expected)} (from the official aclImdb_v1.tar.gz), "
        f"each holding <id>_<rating>.txt reviews. Point --data at the aclImdb folder or its "
        f".tar.gz."
    )


def read_aclimdb(
    path: str | os.PathLike, include_unsup: bool = True, verbose: bool = True
) -> tuple[dict[str, Reviews], int]:
    """Reads a local aclImdb copy (folder, its parent, or .tar.gz) into memory, in path order.

    Args:
        path: The extracted aclImdb folder, a folder holding it, or a tar(.gz/.bz2/.xz) of it.
        include_unsup: Also read train/unsup.
        verbose: Print progress and the count of undecodable files to stderr.

    Returns:
        ({'train': ..., 'test': ..., ['unsup': ...]} sorted by path, number of reviews with bytes
        that are not UTF-8).

    Raises:
        DataError: The path does not exist, the archive is corrupt or truncated, or the layout is
            wrong.

    Example:

    >>> from nlp_lstm.data import read_aclimdb
    >>> reviews, n_replaced = read_aclimdb(acl_imdb, verbose=False)
    >>> {name: len(split) for name, split in reviews.items()}, n_replaced
    ({'train': 8, 'test': 4, 'unsup': 3}, 1)
    """
    root = Path(path).expanduser()
    expected = _LABELLED_DIRS + ((_UNSUP_DIR,) if include_unsup else ())
    wanted = set(expected)
    if not root.exists():
        raise DataError(
            f"{root} does not exist. Pass --data PATH with an extracted aclImdb folder or a "
            f".tar.gz of it, or leave --data out to use tensorflow-datasets."
        )
    progress = _Progress(f"reading {root}", verbose)
    found: list[tuple[str, str, bytes]] = []
    if root.is_dir():
        if (root / "aclImdb").is_dir() and not (root / "train").is_dir():
            root = root / "aclImdb"
        missing = [folder for folder in expected if not (root / folder).is_dir()]
        if missing:
            raise _layout_error(root, missing, expected)
        items = _iter_folder(root, wanted)
    else:
        items = _iter_archive(root, wanted)
    try:
        for item in items:
            found.append(item)
            progress.tick()
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as error:
        if root.is_dir():
            raise DataError(f"cannot read {root}: {error}") from error
        raise DataError(
            f"{root} is not a readable tar archive ({type(error).__name__}: {error}); it may be "
            f"corrupt or truncated. Download it again, or pass --data with the extracted aclImdb "
            f"folder."
        ) from error
    missing = set(expected) - {folder for folder, _, _ in found}
    if missing:
        raise _layout_error(root, missing, expected)
    # Sort by path so the order (and so every seeded split) is the same for a folder and an archive,
    # whatever order the file system or the archive lists them in.
    found.sort(key=lambda item: (item[0], item[1]))
    by_split: dict[str, tuple[list[str], list[int]]] = {}
    n_replaced = 0
    for folder, _, raw in found:
        split, kind = folder.split("/")
        text, replaced = decode_text(raw)
        n_replaced += replaced
        texts, labels = by_split.setdefault("unsup" if kind == "unsup" else split, ([], []))
        texts.append(text)
        labels.append(_DIR_LABELS[kind])
    progress.done(n_replaced)
    return {name: Reviews(*by_split[name]) for name in ("train", "test", "unsup") if name in by_split}, n_replaced


def _download_host_reachable(url: str, timeout_s: float) -> bool:
    """Whether an HTTP HEAD of `url` (via any proxy set in the environment) answers < 400 in time.

    A request, not a bare TCP connect: networks that intercept every connection (captive portals,
    sandboxes) accept any connect, then answer 404 or nothing.
    """
    answers: list[bool] = []

    def head() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s) as reply:
                answers.append(reply.status < 400)
        except (OSError, ValueError):  # URLError, HTTPError, timeouts and refusals are all OSErrors
            answers.append(False)

    # A thread, because name resolution ignores timeouts and can hang on a dead network.
    thread = threading.Thread(target=head, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answers and answers[0])


def read_tfds_imdb(config: DataConfig) -> tuple[dict[str, Reviews], int]:
    """Reads tensorflow-datasets' imdb_reviews/plain_text into memory, downloading it if it can.

    Fails within `config.network_timeout_s` seconds, with a DataError that says to pass --data, when
    the data set is not prepared in `config.tfds_data_dir` and its download host cannot be reached
    (tfds on its own retries for minutes).

    Example (with tfds mocked by the test, which returns random text):

    >>> from nlp_lstm.data_config import DataConfig
    >>> from nlp_lstm.data import read_tfds_imdb
    >>> reviews, _ = read_tfds_imdb(DataConfig(limit=4, verbose=False))
    >>> {name: len(split) for name, split in reviews.items()}
    {'train': 4, 'test': 4, 'unsup': 4}
    >>> set(reviews["unsup"].labels.tolist())
    {-1}
    """
    # Imported here, not at the top: it takes a second, which a local copy never needs to spend.
    import tensorflow_datasets as tfds

    builder = tfds.builder("imdb_reviews/plain_text", data_dir=config.tfds_data_dir)
    names = tuple(builder.info.features["label"].names)
    if names != LABEL_NAMES:
        raise DataError(f"tfds imdb_reviews has labels {names}, expected {LABEL_NAMES}; {_PASS_DATA_HINT}")
    if not builder.is_prepared():
        if not _download_host_reachable(IMDB_DOWNLOAD_URL, config.network_timeout_s):
            raise DataError(
                f"imdb_reviews is not prepared in {builder.data_dir_root} and its download host "
                f"cannot be reached (no network?): {_PASS_DATA_HINT}"
            )
        if config.verbose:
            print(
                f"downloading and preparing imdb_reviews in {builder.data_dir_root}",
                file=sys.stderr,
            )
        try:
            builder.download_and_prepare()
        except Exception as error:  # tfds raises many kinds; all mean the same thing to the user
            raise DataError(f"tfds could not download imdb_reviews ({error}); {_PASS_DATA_HINT}") from error
    splits = {"train": "train", "test": "test"}
    if config.include_unsup:
        splits["unsup"] = "unsupervised"
    reviews: dict[str, Reviews] = {}
    n_replaced = 0
    for name, split in splits.items():
        progress = _Progress(f"reading tfds imdb_reviews {split}", config.verbose)
        sliced = f"{split}[:{config.limit}]" if config.limit else split
        ds = builder.as_dataset(split=sliced, as_supervised=True)
        texts: list[str] = []
        labels: list[int] = []
        split_replaced = 0
        for text_batch, label_batch in ds.batch(4096).as_numpy_iterator():
            for raw in text_batch:
                text, replaced = decode_text(raw)
                split_replaced += replaced
                texts.append(text)
                progress.tick()
            labels.extend(label_batch.tolist())
        if name == "unsup":
            labels = [UNSUP_LABEL] * len(texts)  # -1 in tfds already; pinned here, as for a folder
        progress.done(split_replaced)
        n_replaced += split_replaced
        reviews[name] = Reviews(texts, labels)
    return reviews, n_replaced


def _permute(reviews: Reviews, seed: int, limit: int | None = None) -> Reviews:
    order = np.random.default_rng(seed).permutation(len(reviews))
    return reviews.take(order[:limit])


def split_train_val(reviews: Reviews, val_fraction: float, seed: int) -> tuple[Reviews, Reviews]:
    """Splits `reviews` into (train, val), stratified: about `val_fraction` of each label is val.

    Both parts come out in a seeded random order; the same seed gives the same split.

    Example:

    >>> from nlp_lstm.data import Reviews, split_train_val
    >>> reviews = Reviews([f"review {i}" for i in range(20)], [i % 2 for i in range(20)])
    >>> train, val = split_train_val(reviews, val_fraction=0.2, seed=0)
    >>> len(train), len(val), sorted(val.labels.tolist())
    (16, 4, [0, 0, 1, 1])
    """
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(reviews.labels, return_counts=True)
    # Quotas per label that add up to round(val_fraction * n): floors, then the leftover to the
    # largest remainders (rounding each label alone can put all of a tiny set in val, or none).
    quotas = val_fraction * counts
    n_val = np.floor(quotas).astype(int)
    leftover = int(np.floor(val_fraction * len(reviews) + 0.5)) - n_val.sum()
    n_val[np.argsort(-(quotas - n_val), kind="stable")[:leftover]] += 1
    train_parts, val_parts = [], []
    for label, label_n_val in zip(labels, n_val, strict=True):
        indices = rng.permutation(np.flatnonzero(reviews.labels == label))
        val_parts.append(indices[:label_n_val])
        train_parts.append(indices[label_n_val:])
    train = np.concatenate(train_parts or [np.zeros(0, np.int64)])
    val = np.concatenate(val_parts or [np.zeros(0, np.int64)])
    return reviews.take(rng.permutation(train)), reviews.take(rng.permutation(val))


def load_imdb(config: DataConfig) -> ImdbSplits:
    """Loads IMDB from `config.source` (tfds when None) as train / val / test [/ unsup] datasets.

    Args:
        config: Source, validation fraction, seed, limit.

    Returns:
        ImdbSplits of (text: tf.string, label: tf.int64) datasets: neg = 0, pos = 1, unsup = -1.

    Raises:
        DataError: The source cannot be read; the message says what to pass instead.

    Example (``acl_imdb`` is a path to an aclImdb folder; the test passes a tiny one):

    >>> from nlp_lstm.data_config import DataConfig
    >>> from nlp_lstm.data import load_imdb
    >>> config = DataConfig(acl_imdb, val_fraction=0.25, include_unsup=False, verbose=False)
    >>> splits = load_imdb(config)
    >>> splits.sizes, splits.unsup
    ({'train': 6, 'val': 2, 'test': 4}, None)
    """
    if config.source is None:
        reviews, n_replaced = read_tfds_imdb(config)
    else:
        reviews, n_replaced = read_aclimdb(config.source, config.include_unsup, config.verbose)
    # Separate seeds per split, so capping or resizing one split does not reshuffle another.
    train, val = split_train_val(
        _permute(reviews["train"], config.seed, config.limit), config.val_fraction, config.seed
    )
    parts = {
        "train": train,
        "val": val,
        "test": _permute(reviews["test"], config.seed + 1, config.limit),
    }
    if "unsup" in reviews:
        parts["unsup"] = _permute(reviews["unsup"], config.seed + 2, config.limit)
    return ImdbSplits(
        train=parts["train"].to_dataset(),
        val=parts["val"].to_dataset(),
        test=parts["test"].to_dataset(),
        unsup=parts["unsup"].to_dataset() if "unsup" in parts else None,
        sizes={name: len(part) for name, part in parts.items()},
        n_replaced=n_replaced,
    )
