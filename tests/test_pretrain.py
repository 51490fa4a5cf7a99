"""Language-model pretraining: the windows each direction reads, learning, and reuse after a rerun."""

from __future__ import annotations

import dataclasses
import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlp_lstm import pretrain
from nlp_lstm.data import DataError
from nlp_lstm.nextword_model import NextWordModelConfig, build_nextword_model
from nlp_lstm.pretrain import PretrainConfig, pretrain_language_models
from nlp_lstm.text import VectorizerConfig, build_vectorizer, vectorizer_from_vocabulary

CONFIG = PretrainConfig(steps=3, window=6, batch_size=4, num_sampled=4, seed=5)


@pytest.fixture(scope="module")
def corpus():
    # Each text a stretch of one cycle of words: the next (and the previous) word is predictable.
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    texts = [" ".join(words[(start + i) % 5] for i in range(int(rng.integers(3, 12))))
             for start in rng.integers(0, 5, size=60)]  # fmt: skip
    ds = tf.data.Dataset.from_tensor_slices(texts)
    return ds, build_vectorizer(ds, VectorizerConfig(reserved_tokens=("[BOS]",)))


def test_docstring_examples_run():
    results = doctest.testmod(pretrain)
    assert results.attempted >= 3 and results.failed == 0


def test_the_backward_model_reads_each_window_from_its_end():
    vectorizer = vectorizer_from_vocabulary(["", "[UNK]", "[BOS]", "a", "b", "c", "d"], VectorizerConfig())
    texts = tf.data.Dataset.from_tensor_slices(["a b c d"])  # [BOS] a b c d: one chunk of window + 1 = 5
    config = dataclasses.replace(CONFIG, window=4, batch_size=1)
    forward = pretrain._language_model_batches(texts, vectorizer, config)
    (fwd_in, fwd_out), = forward
    (bwd_in, bwd_out), = pretrain._read_backward(forward)
    assert fwd_in.numpy().tolist() == [[2, 3, 4, 5]] and fwd_out.numpy().tolist() == [[3, 4, 5, 6]]
    # Backward: d c b a, each followed by the word before it in the text.
    assert bwd_in.numpy().tolist() == [[6, 5, 4, 3]] and bwd_out.numpy().tolist() == [[5, 4, 3, 2]]


def test_each_direction_learns(corpus):
    texts, vectorizer = corpus
    config = dataclasses.replace(CONFIG, steps=60, learning_rate=0.05, num_sampled=7)
    for backward in (False, True):
        forward = pretrain._language_model_batches(texts, vectorizer, config)
        batches = (pretrain._read_backward(forward) if backward else forward).take(5)
        model_config = NextWordModelConfig(vectorizer.vocabulary_size(), 6, 5, tie_embeddings=False, num_sampled=7,
                                           seed=config.seed + backward)  # fmt: skip
        keras.utils.set_random_seed(model_config.seed)
        untrained = build_nextword_model(model_config)
        untrained.compile()
        before = untrained.evaluate(batches, verbose=0)  # full-softmax cross-entropy
        embedding = untrained.embedding.get_weights()[0] if backward else None
        trained = pretrain._train_direction(forward, vectorizer.vocabulary_size(), 6, 5, config, backward, embedding,
                                            tf.distribute.get_strategy(), 0)  # fmt: skip
        assert trained.evaluate(batches, verbose=0) < before - 0.3
        if backward:  # the word vectors it was given stay as they were
            np.testing.assert_array_equal(trained.embedding.get_weights()[0], embedding)


def test_a_rerun_reuses_what_was_saved_and_only_that(corpus, tmp_path, monkeypatch):
    texts, vectorizer = corpus
    first = pretrain_language_models(texts, vectorizer, 6, 5, CONFIG, tmp_path, source={"data": "x"})
    trained = []
    real = pretrain._train_direction

    def counting(*args):
        trained.append("backward" if args[5] else "forward")
        return real(*args)

    monkeypatch.setattr(pretrain, "_train_direction", counting)
    again = pretrain_language_models(texts, vectorizer, 6, 5, CONFIG, tmp_path, source={"data": "x"})
    assert trained == []
    for a, b in zip([first.embedding, *first.forward, *first.backward], [again.embedding, *again.forward,
                                                                         *again.backward]):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    # Killed before the backward model was saved: only that one trains again, on the saved vectors.
    (tmp_path / "backward.npz").unlink()
    resumed = pretrain_language_models(texts, vectorizer, 6, 5, CONFIG, tmp_path, source={"data": "x"})
    assert trained == ["backward"]
    np.testing.assert_array_equal(resumed.embedding, first.embedding)
    # Another source, other sizes, or a damaged file: trained again, never a crash or a mix-up.
    trained.clear()
    pretrain_language_models(texts, vectorizer, 6, 5, CONFIG, tmp_path, source={"data": "y"})
    assert trained == ["forward", "backward"]
    (tmp_path / "backward.npz").write_bytes(b"not a zip")
    trained.clear()
    pretrain_language_models(texts, vectorizer, 6, 5, CONFIG, tmp_path, source={"data": "y"})
    assert trained == ["backward"]
    # A forward model trained again gives new word vectors: the saved backward model is not reused with them.
    (tmp_path / "forward.npz").unlink()
    trained.clear()
    pretrain_language_models(texts, vectorizer, 6, 5, CONFIG, tmp_path, source={"data": "y"})
    assert trained == ["forward", "backward"]


def test_too_little_text_or_no_boundary_token_is_a_clear_error(corpus):
    _, vectorizer = corpus
    short = tf.data.Dataset.from_tensor_slices(["alpha beta"])
    with pytest.raises(DataError, match="too little text to pretrain on"):
        pretrain_language_models(short, vectorizer, 6, 5, CONFIG)
    plain = vectorizer_from_vocabulary(["", "[UNK]", "alpha"], VectorizerConfig())
    with pytest.raises(ValueError, match=r"no '\[BOS\]'"):
        pretrain_language_models(short, plain, 6, 5, CONFIG)


@pytest.mark.parametrize("field, value", [("steps", 0), ("window", 0), ("batch_size", 0), ("num_sampled", 0),
                                          ("dropout", 1.0), ("learning_rate", 0.0)])
def test_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        PretrainConfig(**{field: value})
