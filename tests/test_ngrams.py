"""Tests of nlp_lstm.sentiment.ngrams, the sentiment model's NBSVM member over words and hashed word pairs."""

from __future__ import annotations

import doctest

import keras
import numpy as np
import pytest

from nlp_lstm.sentiment import ngrams
from nlp_lstm.sentiment.ngrams import HashedBigrams, NgramLogistic


def _pairs_oracle(ids: np.ndarray, vocabulary_size: int, buckets: int) -> np.ndarray:
    """Row by row in Python integers: the ids, then each adjacent pair's row (0 when either is padding)."""
    rows = []
    for row in ids.tolist():
        pairs = [
            0 if a == 0 or b == 0 else vocabulary_size + (a * 1_000_003 + b) % buckets for a, b in zip(row, row[1:])
        ]
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


def test_distinct_ids_keep_each_id_once():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 6, (7, 9))  # many repeats, some padding
    got = ngrams.distinct_ids(ids).numpy()
    for row, kept in zip(ids, got, strict=True):
        assert sorted(kept[kept > 0].tolist()) == sorted(set(row.tolist()) - {0})


def _logistic_model(rows: int) -> keras.Model:
    ids = keras.Input((None,), dtype="int64")
    return keras.Model(ids, NgramLogistic(rows, name="ngram_probability")(ids))


def test_the_probability_is_the_sigmoid_of_the_weights_of_the_distinct_ids():
    model = _logistic_model(10)
    weights = np.random.default_rng(2).normal(size=10).astype("float32")
    model.get_layer("ngram_probability").set_weights([weights, np.array([-0.3], "float32")])
    ids = np.array([[3, 4, 3, 3, 0, 0], [7, 0, 0, 0, 0, 0], [2, 9, 2, 9, 1, 1], [0, 0, 0, 0, 0, 0]])
    expected = [1 / (1 + np.exp(-(-0.3 + sum(weights[i] for i in set(row.tolist()) - {0})))) for row in ids]
    np.testing.assert_allclose(model(ids).numpy()[:, 0], expected, rtol=1e-5)
    # Padding at the end changes nothing: a row alone, cut to its length, gets the same probability.
    np.testing.assert_allclose(model(ids[:1, :4]).numpy()[0], model(ids).numpy()[0], rtol=1e-6)
    assert not model.trainable_weights  # fitted, not trained by the optimizer


def test_log_count_ratios_against_counting():
    features = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 1]])
    labels = np.array([1, 1, 0, 0])
    pos = [1 + sum(f[j] for f, y in zip(features, labels) if y == 1) for j in range(3)]  # [3, 2, 2]
    neg = [1 + sum(f[j] for f, y in zip(features, labels) if y == 0) for j in range(3)]  # [1, 2, 3]
    expected = [np.log(p / sum(pos)) - np.log(n / sum(neg)) for p, n in zip(pos, neg)]
    np.testing.assert_allclose(ngrams.log_count_ratios(features, labels), expected, rtol=1e-12)


def _newton_oracle(z: np.ndarray, labels: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """The same objective minimised by Newton's method on dense matrices: (w, bias)."""
    a = np.hstack([z, np.ones((len(z), 1))])
    theta = np.zeros(a.shape[1])
    penalty = np.diag(np.r_[np.full(z.shape[1], 1 / c), 0.0])
    for _ in range(50):
        p = 1 / (1 + np.exp(-a @ theta))
        gradient = a.T @ (p - labels) + penalty @ theta
        hessian = a.T @ (a * (p * (1 - p))[:, None]) + penalty
        theta -= np.linalg.solve(hessian, gradient)
    return theta[:-1], float(theta[-1])


def _toy_reviews(seed: int, n: int = 60, rows: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Ids (n, 8), post-padded, where ids 2-4 lean pos and 5-7 lean neg, plus noise ids."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    ids = np.zeros((n, 8), "int64")
    for k, label in enumerate(labels):
        length = rng.integers(2, 9)
        cue = rng.integers(2, 5) if (label == 1) == (rng.random() < 0.85) else rng.integers(5, 8)
        ids[k, :length] = rng.integers(8, rows, length)
        ids[k, rng.integers(0, length)] = cue
    return ids, labels


def test_the_fit_finds_the_optimum_newton_finds():
    ids, labels = _toy_reviews(3)
    batches = [(ids[:25], labels[:25]), (ids[25:], labels[25:])]
    fitted = ngrams.fit_ngram_logistic(batches, rows=40, c=0.5)
    seen = np.unique(ids[ids > 0])
    x = np.zeros((len(ids), len(seen)))
    for k, row in enumerate(ids):
        x[k, np.searchsorted(seen, row[row > 0])] = 1.0  # presence, not counts
    r = ngrams.log_count_ratios(x, labels)
    w, bias = _newton_oracle(x * r, labels.astype(float), c=0.5)
    assert fitted.converged and fitted.features == len(seen)
    np.testing.assert_allclose(fitted.weights[seen], w * r, atol=1e-4)
    np.testing.assert_allclose(fitted.bias, bias, atol=1e-4)
    unseen = np.setdiff1d(np.arange(40), seen)
    assert not fitted.weights[unseen].any()  # padding and ids never seen weigh nothing
    # The layer with the fitted weights gives the oracle's probabilities.
    model = _logistic_model(40)
    model.get_layer("ngram_probability").set_weights([fitted.weights, np.array([fitted.bias], "float32")])
    np.testing.assert_allclose(model(ids).numpy()[:, 0], 1 / (1 + np.exp(-(x * r @ w + bias))), atol=1e-5)


def test_the_fitted_member_generalises_on_toy_data():
    ids, labels = _toy_reviews(4, n=400)
    fitted = ngrams.fit_ngram_logistic([(ids, labels)], rows=40)
    model = _logistic_model(40)
    model.get_layer("ngram_probability").set_weights([fitted.weights, np.array([fitted.bias], "float32")])
    held_out, held_labels = _toy_reviews(5, n=400)
    accuracy = np.mean((model(held_out).numpy()[:, 0] >= 0.5) == held_labels)
    assert accuracy > 0.75  # the cues are right 85% of the time; chance is 50%


def test_the_fit_refuses_bad_data():
    ids, labels = _toy_reviews(6)
    with pytest.raises(ValueError, match="both labels"):
        ngrams.fit_ngram_logistic([(ids, np.ones_like(labels))], rows=40)
    with pytest.raises(ValueError, match="both labels"):
        ngrams.fit_ngram_logistic([], rows=40)
    with pytest.raises(ValueError, match="an id 39 is beyond the n-gram member's 20 rows"):
        ngrams.fit_ngram_logistic([(np.array([[39, 3], [2, 0]]), np.array([0, 1]))], rows=20)
    with pytest.raises(ValueError, match="c must be > 0, got 0"):
        ngrams.fit_ngram_logistic([(ids, labels)], rows=40, c=0)
    with pytest.raises(ValueError, match="rows must be an int >= 1"):
        NgramLogistic(0)


def test_a_model_with_the_member_saves_and_loads(tmp_path):
    ids = keras.Input((None,), dtype="int64")
    model = keras.Model(ids, ngrams.ngram_probability(ids, vocabulary_size=12, buckets=16))
    member = model.get_layer("ngram_probability")
    member.set_weights([np.random.default_rng(7).normal(size=28).astype("float32"), np.array([0.1], "float32")])
    batch = np.array([[3, 4, 5, 0], [7, 8, 9, 10]])
    model.save(tmp_path / "member.keras")
    loaded = keras.models.load_model(tmp_path / "member.keras")  # safe_mode, no custom_objects
    np.testing.assert_allclose(loaded(batch).numpy(), model(batch).numpy(), rtol=1e-6)
    assert loaded.get_layer("ngram_ids").get_config()["buckets"] == 16
