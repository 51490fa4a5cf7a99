"""NBSVM's model of words and word pairs: the sentiment model's n-gram member, beside its LSTMs.

    token ids (batch, time), 0-padded
        --HashedBigrams--> the ids, then each adjacent pair's bucket (batch, 2 * time - 1), 0 where padded
        --NgramLogistic--> sigmoid(bias + the sum of one weight per distinct n-gram of the review) (batch, 1)

This is Wang & Manning's (2012) NBSVM with the logistic loss: each review is the set of the words and
word pairs it contains, each n-gram's feature is scaled by its naive Bayes log-count ratio

    r = log((1 + positive reviews holding it) / |.|_1) - log((1 + negative reviews holding it) / |.|_1),

and an L2-regularised logistic regression is fitted to those features (`fit_ngram_logistic`), to
convergence, with scipy's L-BFGS: the objective is convex, and 60 or so iterations over the 22,500
training reviews take seconds. The fitted weights times r make one number per n-gram, which the model
holds as a non-trainable weight: the member is fitted once before the LSTMs train and stays fixed.

Word order reaches it only through the pairs, so its errors differ from an LSTM's, and the two average
well (Mesnil et al. 2014 ensemble an RNN language model with NBSVM on IMDB for the same reason). Pairs
are hashed into a fixed number of buckets from the token ids alone, inside the model: no second
vocabulary to build or ship, and the exported model takes the same raw strings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import layers, ops

# Odd, so that a -> a * multiplier is one-to-one modulo any power of two.
_PAIR_MULTIPLIER = 1_000_003


def _check_sizes(**sizes: Any) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


@keras.saving.register_keras_serializable(package="nlp_lstm")
class HashedBigrams(layers.Layer):
    """Token ids (batch, time) -> the ids followed by the buckets of their adjacent pairs (batch, 2 * time - 1).

    The pair of ids (a, b) goes to id `vocabulary_size + (a * 1_000_003 + b) mod buckets`, so pairs never
    share an id with words; a pair with padding (id 0) on either side is 0, padding itself. Different
    pairs may share a bucket.

    Args:
        vocabulary_size: Ids taken by the words (0 .. vocabulary_size - 1).
        buckets: Ids for the pairs.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment.ngrams import HashedBigrams
    >>> HashedBigrams(vocabulary_size=10, buckets=7)(np.array([[2, 3, 0]])).numpy().tolist()  # 2*1000003+3 = 2000009
    [[2, 3, 0, 14, 0]]
    """

    def __init__(self, vocabulary_size: int, buckets: int, **kwargs: Any):
        super().__init__(**kwargs)
        _check_sizes(vocabulary_size=vocabulary_size, buckets=buckets)
        self.vocabulary_size = vocabulary_size
        self.buckets = buckets

    def call(self, token_ids: Any) -> Any:
        token_ids = ops.cast(token_ids, "int64")  # (batch, time)
        left, right = token_ids[:, :-1], token_ids[:, 1:]  # (batch, time - 1) each
        pairs = ops.mod(left * _PAIR_MULTIPLIER + right, self.buckets) + self.vocabulary_size
        pairs = ops.where(ops.logical_and(left > 0, right > 0), pairs, ops.zeros_like(pairs))
        return ops.concatenate([token_ids, pairs], axis=1)  # (batch, 2 * time - 1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        time = input_shape[1]
        return (input_shape[0], None if time is None else max(2 * time - 1, 0))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "buckets": self.buckets}


def distinct_ids(ids: Any) -> Any:
    """Each row's ids (batch, n) sorted, with every repeat and padding (0) set to 0: a row's set of ids.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment.ngrams import distinct_ids
    >>> distinct_ids(np.array([[5, 3, 5, 0, 3, 9]])).numpy().tolist()
    [[0, 3, 0, 5, 0, 9]]
    """
    ids = ops.sort(ops.cast(ids, "int64"), axis=1)
    first = ops.concatenate([ops.ones_like(ids[:, :1], dtype="bool"), ids[:, 1:] != ids[:, :-1]], axis=1)
    return ops.where(first, ids, ops.zeros_like(ids))


@keras.saving.register_keras_serializable(package="nlp_lstm")
class NgramLogistic(layers.Layer):
    """Ids (batch, n), 0-padded -> sigmoid(bias + sum of `weights[i]` over the row's distinct ids i > 0) (batch, 1).

    A logistic regression on a review's set of n-grams: an id counts once however often it occurs.
    Its weights (`weights` (rows,), `bias` (1,)) are not trained by the optimizer; `fit_ngram_logistic`
    computes them.

    Args:
        rows: Ids it weighs (0 .. rows - 1); id 0 is padding and weighs nothing.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment.ngrams import NgramLogistic
    >>> layer = NgramLogistic(rows=4)
    >>> layer.build((None, None))
    >>> layer.set_weights([np.array([9.0, 1.0, -2.0, 0.5], "float32"), np.array([0.25], "float32")])
    >>> round(float(layer(np.array([[1, 3, 1, 0]]))[0, 0]), 6), round(float(1 / (1 + np.exp(-(0.25 + 1.0 + 0.5)))), 6)
    (0.851953, 0.851953)
    """

    def __init__(self, rows: int, **kwargs: Any):
        super().__init__(**kwargs)
        _check_sizes(rows=rows)
        self.rows = rows

    def build(self, input_shape: tuple) -> None:
        self.ngram_weights = self.add_weight(shape=(self.rows,), initializer="zeros", trainable=False, name="weights")
        self.bias = self.add_weight(shape=(1,), initializer="zeros", trainable=False, name="bias")

    def call(self, ids: Any) -> Any:
        ids = distinct_ids(ids)  # (batch, n): each id once, the rest 0
        weights = ops.take(ops.cast(self.ngram_weights, self.compute_dtype), ids, axis=0)  # (batch, n)
        weights = ops.where(ids > 0, weights, ops.zeros_like(weights))
        logit = ops.sum(weights, axis=1, keepdims=True) + ops.cast(self.bias, self.compute_dtype)  # (batch, 1)
        return ops.sigmoid(logit)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rows": self.rows}


def ngram_probability(token_ids: Any, vocabulary_size: int, buckets: int, name: str = "ngram") -> Any:
    """P(pos) (batch, 1) of the n-gram member for the symbolic token ids (batch, time).

    Its layers are `{name}_ids` (HashedBigrams) and `{name}_probability` (NgramLogistic), whose
    weights start at zero (P(pos) = 0.5) until `fit_ngram_logistic` sets them.

    Example:

    >>> import keras, numpy as np
    >>> from nlp_lstm.sentiment.ngrams import ngram_probability
    >>> ids = keras.Input((None,), dtype="int64")
    >>> model = keras.Model(ids, ngram_probability(ids, vocabulary_size=20, buckets=8))
    >>> model(np.array([[4, 5, 6], [7, 0, 0]])).numpy().tolist()
    [[0.5], [0.5]]
    """
    ids = HashedBigrams(vocabulary_size, buckets, name=f"{name}_ids")(token_ids)  # (batch, 2 * time - 1)
    return NgramLogistic(vocabulary_size + buckets, name=f"{name}_probability")(ids)


@dataclass(frozen=True)
class NgramFit:
    """What `fit_ngram_logistic` found: the layer's weights, and how the fit went."""

    weights: np.ndarray  # (rows,) float32: fitted coefficient x log-count ratio per id, 0 for unseen ids
    bias: float
    features: int  # distinct ids seen in training
    iterations: int
    converged: bool
    train_accuracy: float


def log_count_ratios(features: Any, labels: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """NBSVM's r (features,): log of each feature's smoothed share among positive rows over negative ones.

    Args:
        features: (rows, features) 0/1 matrix (numpy or scipy.sparse).
        labels: (rows,) 0/1.
        alpha: Added to every count.
    """
    labels = np.asarray(labels)
    p = alpha + np.asarray(features[labels == 1].sum(axis=0)).ravel()
    q = alpha + np.asarray(features[labels == 0].sum(axis=0)).ravel()
    return np.log(p / p.sum()) - np.log(q / q.sum())


def fit_ngram_logistic(
    id_batches: Iterable[tuple[np.ndarray, np.ndarray]],
    rows: int,
    c: float = 1.0,
    max_iterations: int = 300,
    log: Callable[[str], None] | None = None,
) -> NgramFit:
    """Fits NBSVM's logistic regression (module docstring) to batches of (ids (batch, n), labels (batch,)).

    Minimises sum_reviews logloss(bias + z . w) + |w|^2 / (2 c), where z is the review's 0/1 vector of
    distinct ids > 0 scaled by their log-count ratios, with L-BFGS; returns w * r per id.

    Args:
        id_batches: The training split as the member's ids (HashedBigrams' output) and 0/1 labels.
        rows: Ids there can be (the layer's `rows`); larger ids are an error.
        c: Inverse strength of the L2 penalty, as liblinear's C.
        max_iterations: L-BFGS iterations at most.
        log: Where progress lines go (None: nowhere).
    """
    import scipy.optimize
    import scipy.sparse
    import scipy.special

    if c <= 0:
        raise ValueError(f"c must be > 0, got {c}")
    start = time.perf_counter()
    row_ids, labels = [], []
    for ids, batch_labels in id_batches:
        ids = np.asarray(ids)
        labels.append(np.asarray(batch_labels).reshape(-1))
        row_ids.extend(np.unique(row[row > 0]) for row in ids)
    labels = np.concatenate(labels).astype("float64") if labels else np.zeros(0)
    if not len(labels) or labels.min() == labels.max():
        raise ValueError("the n-gram member needs training reviews of both labels")
    ids = np.concatenate(row_ids) if row_ids else np.zeros(0, "int64")
    if len(ids) and ids.max() >= rows:
        raise ValueError(f"an id {int(ids.max())} is beyond the n-gram member's {rows} rows")
    seen, columns = np.unique(ids, return_inverse=True)  # features: the ids that occur
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in row_ids])])
    x = scipy.sparse.csr_matrix((np.ones(len(ids)), columns, indptr), shape=(len(row_ids), len(seen)))
    r = log_count_ratios(x, labels)
    z = x.multiply(r).tocsr()

    def objective(w_and_bias: np.ndarray) -> tuple[float, np.ndarray]:
        w, bias = w_and_bias[:-1], w_and_bias[-1]
        logits = z @ w + bias
        loss = np.sum(labels * np.logaddexp(0, -logits) + (1 - labels) * np.logaddexp(0, logits)) + w @ w / (2 * c)
        error = scipy.special.expit(logits) - labels  # d loss / d logits; expit does not overflow
        return loss, np.append(z.T @ error + w / c, error.sum())

    result = scipy.optimize.minimize(
        objective, np.zeros(len(seen) + 1), jac=True, method="L-BFGS-B", options={"maxiter": max_iterations}
    )
    w, bias = result.x[:-1], float(result.x[-1])
    weights = np.zeros(rows, "float32")
    weights[seen] = w * r
    accuracy = float(np.mean(((z @ w + bias) >= 0) == (labels == 1)))
    if log:
        log(f"n-gram member: {len(seen):,} n-grams in {len(labels):,} reviews, {result.nit} L-BFGS iterations"
            f"{'' if result.success else ' (stopped before converging)'}, training accuracy {accuracy:.4f}, "
            f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    return NgramFit(weights, bias, len(seen), int(result.nit), bool(result.success), accuracy)
