"""Word vectors from unlabelled text, to start the classifier's embedding from (not from noise).

IMDB ships 50,000 unlabelled reviews beside its 25,000 labelled ones. A classifier trained from
random word vectors learns what "superb" means only from the labelled reviews that contain it; word
vectors that already place "superb" near "excellent" let it generalise from far fewer (Dai & Le 2015:
an LSTM from random init 86.5% on IMDB, initialised with word2vec vectors 90.0%).

The vectors here are the truncated SVD of the positive pointwise mutual information (PPMI) matrix
of word-context counts (Levy, Goldberg & Dagan 2015, "Improving distributional similarity with
lessons learned from word embeddings": with context-distribution smoothing 0.75 and eigenvalue
weighting 0.5 it matches word2vec on similarity tasks). It is a few matrix products in numpy rather
than an epoch of SGD: about a minute for IMDB's 17M training tokens on 2 cores, and deterministic
for a seed. Counts are taken within a review only, over a window of nearby words weighted 1/distance.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EmbeddingConfig:
    """How the word vectors are computed.

    Args:
        dim: Size of each word vector.
        window: Words on each side of a word that count as its context.
        contexts: Only the this many most frequent words are contexts (the columns of the matrix),
            which bounds memory at vocabulary x contexts floats; rarer words still get vectors.
        smoothing: Context-distribution smoothing exponent (0.75 as word2vec's negative sampling).
        scale: Standard deviation of the vectors of words seen in the text (the Embedding layer's own
            initialiser has 0.029).
        seed: Seeds the randomized SVD.
        power_iterations: Subspace iterations of the randomized SVD (more: closer to the exact one).
    """

    dim: int = 128
    window: int = 5
    contexts: int = 10_000
    smoothing: float = 0.75
    scale: float = 0.05
    seed: int = 0
    power_iterations: int = 3

    def __post_init__(self) -> None:
        for name in ("dim", "window", "contexts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")


def cooccurrence_counts(
    id_rows: Iterable[np.ndarray], vocabulary_size: int, window: int, contexts: int
) -> tuple[np.ndarray, int]:
    """Word-context counts, each pair weighted 1/distance, within each row of token ids.

    Args:
        id_rows: Token ids, one array per text (id 0, padding, is skipped wherever it appears).
        vocabulary_size: Ids run from 0 to vocabulary_size - 1.
        window: Largest distance counted.
        contexts: Only ids below this are counted as contexts (ids are by falling frequency).

    Returns:
        The counts (vocabulary_size, min(contexts, vocabulary_size)) float32, symmetric in the sense
        that a pair is counted both ways, and the number of tokens read.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.embeddings import cooccurrence_counts
    >>> counts, n = cooccurrence_counts([np.array([2, 3, 4]), np.array([3])], 5, window=2, contexts=5)
    >>> counts[2].tolist(), n
    ([0.0, 0.0, 0.0, 1.0, 0.5], 4)
    """
    contexts = min(contexts, vocabulary_size)
    # One stream with `window` zeros between texts: no pair spans two texts, and padding is skipped.
    gap = np.zeros(window, np.int64)
    pieces, n_tokens = [], 0
    for row in id_rows:
        row = np.asarray(row, np.int64).reshape(-1)
        if row.size and (row.min() < 0 or row.max() >= vocabulary_size):
            raise ValueError(f"token ids must be in [0, {vocabulary_size}), got {row.min()}..{row.max()}")
        n_tokens += int(np.count_nonzero(row))
        pieces += [row, gap]
    stream = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    counts = np.zeros(vocabulary_size * contexts, np.float32)
    for distance in range(1, window + 1):
        left, right = stream[:-distance], stream[distance:]
        for word, context in ((left, right), (right, left)):
            keep = (word > 0) & (context > 0) & (context < contexts)
            keys = word[keep] * contexts + context[keep]
            counts += np.bincount(keys, minlength=counts.size).astype(np.float32) / distance
    return counts.reshape(vocabulary_size, contexts), n_tokens


def ppmi(counts: np.ndarray, smoothing: float = 0.75) -> np.ndarray:
    """Positive PMI of word-context counts, with the context distribution raised to `smoothing`.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.embeddings import ppmi
    >>> m = ppmi(np.array([[2.0, 0.0], [0.0, 2.0]], "float32"), smoothing=1.0)
    >>> np.round(m.astype(float), 3).tolist()  # log(2 * 4 / (2 * 2)) = log 2 where the pair occurs
    [[0.693, 0.0], [0.0, 0.693]]
    """
    counts = np.asarray(counts, np.float32)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no co-occurrences counted: the text is empty or has no in-vocabulary pairs")
    words = counts.sum(axis=1, keepdims=True)  # (vocabulary, 1)
    contexts = counts.sum(axis=0, keepdims=True) ** smoothing  # (1, contexts)
    context_p = contexts / contexts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts) - np.log(words / total) - np.log(context_p) - np.log(total)
    return np.where(counts > 0, np.maximum(pmi, 0.0), 0.0).astype(np.float32)


def randomized_svd(
    matrix: np.ndarray, rank: int, seed: int = 0, power_iterations: int = 3, oversample: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """The top `rank` left singular vectors and singular values (Halko, Martinsson & Tropp 2011).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.embeddings import randomized_svd
    >>> a = np.diag([3.0, 2.0, 1.0]).astype("float32")
    >>> u, s = randomized_svd(a, 2)
    >>> np.round(s, 4).tolist(), np.round(np.abs(u[:, 0]), 4).tolist()
    ([3.0, 2.0], [1.0, 0.0, 0.0])
    """
    rows, cols = matrix.shape
    width = min(rank + oversample, rows, cols)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(matrix @ rng.standard_normal((cols, width)).astype(matrix.dtype))
    for _ in range(power_iterations):
        q, _ = np.linalg.qr(matrix.T @ q)
        q, _ = np.linalg.qr(matrix @ q)
    u_small, s, _ = np.linalg.svd(q.T @ matrix, full_matrices=False)  # (width, cols): small
    rank = min(rank, width)
    return (q @ u_small[:, :rank]).astype(np.float32), s[:rank].astype(np.float32)


def ppmi_svd_vectors(
    id_rows: Iterable[np.ndarray], vocabulary_size: int, config: EmbeddingConfig = EmbeddingConfig(), log=None
) -> np.ndarray:
    """Word vectors (vocabulary_size, config.dim) float32 for the ids in `id_rows`.

    Row 0 (padding) is zeros; so is any word never seen beside a context word. Each column's sign
    is fixed (its largest entry positive), so a seed gives the same vectors on every machine's BLAS
    up to rounding.

    Args:
        id_rows: Token ids, one array per text: the training and unlabelled text, never the test set.
        vocabulary_size: Rows of the result.
        config: Size, window and smoothing.
        log: Called with one line of progress per stage (e.g. `print`), or None.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.embeddings import EmbeddingConfig, ppmi_svd_vectors
    >>> rows = [np.array([2, 3, 2, 3, 4, 5, 4, 5])] * 20
    >>> vectors = ppmi_svd_vectors(rows, 6, EmbeddingConfig(dim=2, window=1))
    >>> vectors.shape, float(np.abs(vectors[0]).sum())
    ((6, 2), 0.0)
    """
    say = log or (lambda line: None)
    start = time.perf_counter()
    counts, n_tokens = cooccurrence_counts(id_rows, vocabulary_size, config.window, config.contexts)
    say(f"word vectors: counted pairs within {config.window} words over {n_tokens:,} tokens "
        f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    seen = counts.any(axis=1)  # (vocabulary,): words with at least one context
    seen[0] = False
    matrix = ppmi(counts, config.smoothing)
    del counts
    u, s = randomized_svd(matrix, config.dim, config.seed, config.power_iterations)
    vectors = np.zeros((vocabulary_size, config.dim), np.float32)
    vectors[:, : u.shape[1]] = u * np.sqrt(s)  # eigenvalue weighting 0.5
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(config.dim)])
    vectors *= np.where(signs == 0, 1.0, signs)
    vectors[~seen] = 0.0  # not rounding noise from the SVD
    std = vectors[seen].std() if seen.any() else 0.0
    if std > 0:
        vectors *= config.scale / std
    say(f"word vectors: {vocabulary_size:,} x {config.dim} from the PPMI matrix's SVD "
        f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return vectors
