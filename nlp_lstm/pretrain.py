"""Language-model pretraining of the classifier's word vectors and LSTMs, on unlabelled reviews.

A classifier that starts from random weights learns language and sentiment at once from 22,500
labelled reviews, and overfits within three epochs. IMDB also ships 50,000 unlabelled reviews. Dai &
Le (2015) pretrain the LSTM as a language model on them first and reach 92.4% test accuracy against
86.5% from random weights; ULMFiT (Howard & Ruder 2018) does the same at scale.

The classifier's LSTM is bidirectional, so it gets two language models with its own sizes: a forward
one (each word from the words before it) for the forward LSTM, and a backward one (each word from the
words after it) for the backward LSTM. The forward model learns the word vectors; the backward model
reads them frozen, so that both LSTMs start in the same space of word vectors. Both are
`nlp_lstm.nextword_model.NextWordModel`, trained with its sampled softmax on windows of the training
and unlabelled reviews (never the test reviews; labels are not read).

Measured on IMDB (README): this start did not beat random weights yet. Trained on short windows from a
zero state, the models let the cell state grow over a whole review (mean |c| 18 at 800 tokens), which
saturates tanh(c); windows as long as the reviews, or state carried across windows, should come first.

Each direction's result is saved to `<out>/pretrained/` as it finishes, with what produced it, so a
rerun of an interrupted training command does not pretrain again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nlp_lstm.data import DataError
from nlp_lstm.distribute import prepare_model, shardable
from nlp_lstm.files import atomic_replace, atomic_write_text
from nlp_lstm.model_config import NextWordModelConfig, PretrainConfig  # noqa: F401  (PretrainConfig is re-exported)
from nlp_lstm.nextword_model import NextWordModel, build_nextword_model
from nlp_lstm.text import BOUNDARY_TOKEN, make_language_model_dataset

PRETRAINED_DIR = "pretrained"
_REPORT_EVERY = 250
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class PretrainedWeights:
    """What the classifier starts from: word vectors (vocabulary, dim) and each LSTM's weights.

    `forward` and `backward` are [kernel, recurrent_kernel, bias], as `LSTM.get_weights()` gives them.
    """

    embedding: np.ndarray
    forward: list[np.ndarray]
    backward: list[np.ndarray]


def _language_model_batches(texts: tf.data.Dataset, vectorizer, config: PretrainConfig) -> tf.data.Dataset:
    """(inputs, next tokens) batches, (batch, window) each; tokenised once, on the first pass (cached)."""
    return make_language_model_dataset(texts, vectorizer, config.window, config.batch_size, config.seed)


def _read_backward(batches: tf.data.Dataset) -> tf.data.Dataset:
    """The same windows read from their end: each word is to be predicted from the ones after it."""
    return batches.map(lambda inputs, targets: (tf.reverse(targets, [1]), tf.reverse(inputs, [1])))


def _identity(vectorizer, embedding_dim: int, units: int, config: PretrainConfig, source: dict | None) -> dict:
    vocabulary = "\n".join(str(token) for token in vectorizer.get_vocabulary())
    return {
        "source": source,
        "embedding_dim": embedding_dim,
        "units": units,
        "pretrain": asdict(config),
        "vocabulary_sha256": hashlib.sha256(vocabulary.encode("utf-8")).hexdigest(),
    }


def _load_direction(folder: Path, direction: str, identity: dict) -> list[np.ndarray] | None:
    """The saved arrays of a direction trained with `identity`, or None (none saved, or another run's)."""
    try:
        saved_identity = json.loads((folder / f"{direction}.json").read_text(encoding="utf-8"))
        if saved_identity != identity:
            return None
        with np.load(folder / f"{direction}.npz") as arrays:
            return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    except (OSError, ValueError, KeyError):
        return None


def _save_direction(folder: Path, direction: str, identity: dict, arrays: Sequence[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_replace(folder / f"{direction}.npz", lambda f: np.savez(f, *arrays), suffix=".tmp.npz")
    atomic_write_text(folder / f"{direction}.json", json.dumps(identity, indent=2))


def _train_direction(
    batches: tf.data.Dataset,
    vocabulary_size: int,
    embedding_dim: int,
    units: int,
    config: PretrainConfig,
    backward: bool,
    embedding: np.ndarray | None,
    strategy: tf.distribute.Strategy,
    verbose: int,
) -> NextWordModel:
    model_config = NextWordModelConfig(
        vocab_size=vocabulary_size, embedding_dim=embedding_dim, units=units, num_layers=1,
        dropout=config.dropout, tie_embeddings=False, num_sampled=config.num_sampled,
        seed=config.seed + (1 if backward else 0),
    )  # fmt: skip
    keras.utils.set_random_seed(model_config.seed)
    with strategy.scope():
        model = build_nextword_model(model_config)
        if embedding is not None:  # the forward model's word vectors, read as they are
            model.embedding.set_weights([embedding])
            model.embedding.trainable = False
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm))
    model = prepare_model(model, strategy)
    if backward:
        batches = _read_backward(batches)
    # Keras "epochs" of at most _REPORT_EVERY steps, so that a one-line-per-epoch log shows progress.
    per_epoch = min(config.steps, _REPORT_EVERY)
    stop = _StopAfter(config.steps)
    with warnings.catch_warnings():  # Keras's "ran out of data" for a text too short: the error below says it
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(
            shardable(batches.repeat()), steps_per_epoch=per_epoch, epochs=-(-config.steps // per_epoch),
            verbose=verbose, callbacks=[stop],
        )  # fmt: skip
    if stop.done == 0:  # checked after, not before: a look ahead would cut the dataset's cache short
        raise DataError(
            f"too little text to pretrain on: not one batch of {config.batch_size} windows of "
            f"{config.window} tokens; pass more text or a smaller pretraining window and batch"
        )
    return model


class _StopAfter(keras.callbacks.Callback):
    """Stops `fit` after exactly `steps` batches, whatever its epochs would add up to."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps, self.done = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.steps:
            self.model.stop_training = True


def pretrain_language_models(
    texts: tf.data.Dataset,
    vectorizer: keras.layers.TextVectorization,
    embedding_dim: int,
    units: int,
    config: PretrainConfig,
    folder: str | os.PathLike | None = None,
    source: dict | None = None,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int = 0,
    log=None,
) -> PretrainedWeights:
    """Trains the forward, then the backward language model; returns their weights.

    Args:
        texts: Unbatched texts (or (text, label) pairs, labels unread) to learn from.
        vectorizer: The classifier's vocabulary; it must hold the boundary token '[BOS]'.
        embedding_dim: Size of the classifier's word vectors.
        units: Units of each of the classifier's LSTMs.
        config: Steps, window, batch and optimiser.
        folder: Where each direction is saved as it finishes, and found again by a rerun with the
            same sizes, config, vocabulary and `source` (None: nothing saved).
        source: What the text is (e.g. the data config), JSON-serialisable: a saved direction is
            reused only for the same source.
        strategy: The `tf.distribute` strategy to train under (default: the current one).
        verbose: Keras's progress display for each direction's `fit` (0 silent, 1 bar, 2 a line).
        log: Called with a line as each direction starts and ends (e.g. `print`), or None.

    Raises:
        DataError: The text does not fill one batch of windows.
        ValueError: The vocabulary has no '[BOS]'.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.pretrain import PretrainConfig, pretrain_language_models
    >>> from nlp_lstm.text import VectorizerConfig, build_vectorizer
    >>> texts = tf.data.Dataset.from_tensor_slices(["a good film", "a bad film"] * 8)
    >>> vectorizer = build_vectorizer(texts, VectorizerConfig(reserved_tokens=("[BOS]",)))
    >>> weights = pretrain_language_models(texts, vectorizer, 4, 3, PretrainConfig(steps=2, window=4, batch_size=2))
    >>> weights.embedding.shape, [w.shape for w in weights.backward]
    ((7, 4), [(4, 12), (3, 12), (12,)])
    """
    say = log or (lambda line: None)
    strategy = strategy or tf.distribute.get_strategy()
    if BOUNDARY_TOKEN not in vectorizer.get_vocabulary():
        raise ValueError(
            f"the vocabulary has no {BOUNDARY_TOKEN!r}: build it with reserved_tokens=({BOUNDARY_TOKEN!r},)"
        )
    identity = _identity(vectorizer, embedding_dim, units, config, source)
    where = Path(folder) if folder is not None else None
    saved = {d: _load_direction(where, d, identity) if where else None for d in DIRECTIONS}
    if saved["forward"] is None:  # a backward model is only good with the word vectors it was trained on
        saved["backward"] = None
    # One pipeline for both directions: the backward model reads the token windows the forward one cached.
    batches, size = _language_model_batches(texts, vectorizer, config), vectorizer.vocabulary_size()
    if saved["forward"] is not None:
        say("pretraining: forward language model found in the folder; not trained again")
        embedding, forward = saved["forward"][0], saved["forward"][1:]
    else:
        say(f"pretraining: forward language model, {config.steps} steps ({config.tokens_per_direction:,} tokens)")
        model = _train_direction(batches, size, embedding_dim, units, config, False, None, strategy, verbose)
        embedding, forward = model.embedding.get_weights()[0], model.lstm_layers[0].get_weights()
        if where:
            _save_direction(where, "forward", identity, [embedding, *forward])
    if saved["backward"] is not None:
        say("pretraining: backward language model found in the folder; not trained again")
        backward = saved["backward"]
    else:
        say(f"pretraining: backward language model, {config.steps} steps, on the forward model's word vectors")
        model = _train_direction(batches, size, embedding_dim, units, config, True, embedding, strategy, verbose)
        backward = model.lstm_layers[0].get_weights()
        if where:
            _save_direction(where, "backward", identity, backward)
    return PretrainedWeights(embedding, forward, backward)
