"""Tests of nlp_lstm.ngrams, the sentiment model's bag of words and hashed word pairs."""

from __future__ import annotations

import doctest

import keras
import numpy as np
import pytest

from nlp_lstm import ngrams
from nlp_lstm.ngrams import HashedBigrams, bag_of_ngrams_probability


def _pairs_oracle(ids: np.ndarray, vocabulary_size: int, buckets: int) -> np.ndarray:
    """Row by row in Python integers: the ids, then each adjacent pair's row (0 when either is padding)."""
    rows = []
    for row in ids.tolist():
        pairs = [0 if a == 0 or b == 0 else vocabulary_size + (a * 1_000_003 + b) % buckets
                 for a, b in zip(row, row[1:])]
        rows.append(row + pairs)
    return np.array(rows, dtype=np.int64)


def test_docstring_examples_run():
    assert doctest.testmod(ngrams, raise_on_error=True).attempted >= 2


def test_hashed_bigrams_against_an_oracle():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20_000, (5, 9))
    for row, length in enumerate((9, 6, 1, 3, 0)):
        ids[row, length:] = 0  # post-padded rows, one of them all padding
    got = HashedBigrams(vocabulary_size=20_000, buckets=1 << 20)(ids).numpy()
    np.testing.assert_array_equal(got, _pairs_oracle(ids, 20_000, 1 << 20))
    pairs = got[:, 9:]
    assert pairs.shape == (5, 8) and np.all((pairs == 0) | (pairs >= 20_000))  # pairs never land on a word's row


def test_hashed_bigrams_of_one_step_are_the_ids():
    np.testing.assert_array_equal(HashedBigrams(10, 4)(np.array([[3], [0]])).numpy(), [[3], [0]])


@pytest.mark.parametrize("kwargs", [{"vocabulary_size": 0, "buckets": 4}, {"vocabulary_size": 5, "buckets": 0},
                                    {"vocabulary_size": 5, "buckets": 2.5}])  # fmt: skip
def test_hashed_bigrams_refuse_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be an int >= 1"):
        HashedBigrams(**kwargs)


def _bag_model(scale: float, seed: int = 4, buckets: int = 16) -> keras.Model:
    keras.utils.set_random_seed(seed)  # the output layer's weights draw on the global seed
    ids = keras.Input((None,), dtype="int64")
    return keras.Model(ids, bag_of_ngrams_probability(ids, 12, buckets, dim=3, dropout=0.0, seed=seed, scale=scale))


def test_the_probability_is_the_sigmoid_of_the_mean_of_the_unmasked_vectors():
    model = _bag_model(scale=5.0)
    ids = np.array([[3, 4, 5, 0], [7, 0, 0, 0], [2, 11, 2, 11]])
    table = model.get_layer("ngram_embedding").get_weights()[0]  # (12 + 16, 3)
    kernel, bias = model.get_layer("ngram_probability").get_weights()
    rows = _pairs_oracle(ids, 12, 16)
    expected = []
    for row in rows:
        mean = table[row[row > 0]].mean(axis=0) * 5.0  # (3,)
        expected.append(1 / (1 + np.exp(-(mean @ kernel[:, 0] + bias[0]))))
    np.testing.assert_allclose(model(ids).numpy()[:, 0], expected, rtol=1e-5)


def test_scale_changes_the_speed_not_the_starting_function():
    ids = np.array([[3, 4, 5, 0], [7, 8, 0, 0]])
    slow, fast = _bag_model(scale=1.0, buckets=1024), _bag_model(scale=30.0, buckets=1024)
    np.testing.assert_allclose(fast(ids).numpy(), slow(ids).numpy(), rtol=1e-5)  # same seed, same function

    def vectors_moved(model: keras.Model, scale: float) -> np.ndarray:
        """How far one Adam step moves the vectors the model computes with (stored ones times scale)."""
        embedding = model.get_layer("ngram_embedding")
        before = embedding.get_weights()[0] * scale
        model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
        model.train_on_batch(ids, np.array([[1.0], [0.0]]))
        return np.abs(embedding.get_weights()[0] * scale - before)

    rows = _pairs_oracle(ids, 12, 1024)
    used = np.unique(rows[rows > 0])
    assert len(used) == np.count_nonzero(rows)  # no row twice: Adam's sparse step differs for repeated rows
    # Adam's first step moves every coordinate with a gradient by the learning rate (its sign times lr).
    np.testing.assert_allclose(vectors_moved(slow, 1.0)[used], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(vectors_moved(fast, 30.0)[used], 30e-3, rtol=1e-3)


def test_a_model_with_the_bag_saves_and_loads(tmp_path):
    model = _bag_model(scale=30.0)
    ids = np.array([[3, 4, 5, 0], [7, 8, 9, 10]])
    model.save(tmp_path / "bag.keras")
    loaded = keras.models.load_model(tmp_path / "bag.keras")  # safe_mode, no custom_objects
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=1e-6)
    assert loaded.get_layer("ngram_ids").get_config()["buckets"] == 16
