"""A bag of words and word pairs: the sentiment model's n-gram member, beside its LSTMs.

    token ids (batch, time), 0-padded
        --HashedBigrams--> the ids, then each adjacent pair's bucket (batch, 2 * time - 1), 0 where padded
        --Embedding(mask_zero=True)--> (batch, 2 * time - 1, dim)
        --masked mean over time, Dense(1, sigmoid)--> P(pos) (batch, 1)

This is fastText's classifier (Joulin et al. 2016) over unigrams and hashed bigrams. Word order
reaches it only through the pairs, so its errors differ from an LSTM's, and the two average well
(Mesnil et al. 2014 ensemble an RNN language model with NBSVM on IMDB for the same reason). Pairs are
hashed into a fixed number of buckets from the token ids alone, inside the model: no second vocabulary
to build or ship, and the exported model takes the same raw strings.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

# Odd, so that a -> a * multiplier is one-to-one modulo any power of two.
_PAIR_MULTIPLIER = 1_000_003


@keras.saving.register_keras_serializable(package="nlp_lstm")
class HashedBigrams(layers.Layer):
    """Token ids (batch, time) -> the ids followed by the buckets of their adjacent pairs (batch, 2 * time - 1).

    The pair of ids (a, b) goes to row `vocabulary_size + (a * 1_000_003 + b) mod buckets` of an
    embedding of `vocabulary_size + buckets` rows, so pairs never share a row with words; a pair with
    padding (id 0) on either side is 0, padding itself. Different pairs may share a bucket.

    Args:
        vocabulary_size: Rows taken by the words (ids 0 .. vocabulary_size - 1).
        buckets: Rows for the pairs.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.ngrams import HashedBigrams
    >>> HashedBigrams(vocabulary_size=10, buckets=7)(np.array([[2, 3, 0]])).numpy().tolist()  # 2*1000003+3 = 2000009
    [[2, 3, 0, 14, 0]]
    """

    def __init__(self, vocabulary_size: int, buckets: int, **kwargs: Any):
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size), ("buckets", buckets)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
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


def bag_of_ngrams_probability(
    token_ids: Any,
    vocabulary_size: int,
    buckets: int,
    dim: int,
    dropout: float,
    seed: int,
    scale: float = 1.0,
    name: str = "ngram",
) -> Any:
    """P(pos) (batch, 1) of a bag of words and hashed word pairs, for the symbolic token ids (batch, time).

    Args:
        token_ids: A `keras.Input` (or layer output) of 0-padded int ids (batch, time).
        vocabulary_size: Words in the vocabulary (ids below it).
        buckets: Hash buckets for the pairs.
        dim: Size of each word's and pair's vector.
        dropout: Dropout on those vectors while training.
        seed: Seeds the initial vectors and the dropout.
        scale: How many times faster than its learning rate Adam moves the vectors. A bag of n-grams
            wants a larger rate than an LSTM (measured on IMDB: 1e-3 left it at 82.8% on validation
            after 3 epochs where 1e-2 reached 91.0%), and one optimizer trains both.
        name: Prefix of the layers' names.

    Example:

    >>> import keras, numpy as np
    >>> from nlp_lstm.ngrams import bag_of_ngrams_probability
    >>> ids = keras.Input((None,), dtype="int64")
    >>> probability = bag_of_ngrams_probability(ids, vocabulary_size=20, buckets=8, dim=4, dropout=0.0, seed=1)
    >>> model = keras.Model(ids, probability)
    >>> tuple(model(np.array([[4, 5, 6], [7, 0, 0]])).shape)
    (2, 1)
    """
    ids = HashedBigrams(vocabulary_size, buckets, name=f"{name}_ids")(token_ids)  # (batch, 2 * time - 1)
    # Vectors stored 1/scale as large and scaled back after the mean: the same function at the start,
    # but Adam, whose steps have a size set by the learning rate whatever the gradient, moves them
    # `scale` times as fast as the LSTMs' weights beside them.
    initializer = keras.initializers.RandomUniform(-0.05 / scale, 0.05 / scale, seed=seed)
    x = layers.Embedding(
        vocabulary_size + buckets, dim, embeddings_initializer=initializer, mask_zero=True, name=f"{name}_embedding"
    )(ids)  # fmt: skip
    x = layers.Dropout(dropout, seed=seed, name=f"{name}_dropout")(x)  # (batch, 2 * time - 1, dim)
    x = layers.GlobalAveragePooling1D(name=f"{name}_mean")(x)  # (batch, dim): the mean of the unmasked steps
    x = layers.Rescaling(scale, name=f"{name}_scale")(x)
    return layers.Dense(1, activation="sigmoid", name=f"{name}_probability")(x)
