"""The sentiment app: a bidirectional LSTM that reads a movie review and says neg (0) or pos (1).

    text --(text.make_classification_dataset, in tf.data)--> token ids (batch, time), 0-padded
         --Embedding(mask_zero=True)--> (batch, time, embedding_dim)
         --Bidirectional(nlp_lstm.layers.LSTM)--> (batch, time, 2 * units), zeros where masked
         --masked max and mean over time, concatenated--> (batch, 4 * units)
         --Dropout, Dense(1, sigmoid)--> P(pos) (batch, 1)

With `SentimentConfig.ngram_buckets` > 0 (the default) a second member follows the BiLSTM: NBSVM's
logistic regression on the review's words and hashed word pairs (`nlp_lstm.ngrams`, layers named
"ngram_*"), fitted once on the training split before the BiLSTM trains, then fixed. The model outputs
both probabilities (batch, 2) and P(pos) is their mean (`positive_probability`). It reads the same
token ids, so the pipeline, the vocabulary and the export are unchanged.

A model folder (default saved_models/sentiment/) holds model.keras, vocabulary.txt, config.json
("app": "sentiment", the SentimentConfig and DataConfig it was trained with), metrics.json and
what `nlp_lstm.training.fit` writes (history.csv, curves.png, logs/). The vocabulary is adapted
once, on the training split, and every later step (evaluate, predict, export) reads it back.

Labels everywhere: 0 = neg, 1 = pos (`nlp_lstm.data.LABEL_NAMES`). P(pos) >= 0.5 is pos.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from nlp_lstm import __version__
from nlp_lstm.data import LABEL_NAMES, DataConfig, DataError, ImdbSplits, load_imdb
from nlp_lstm.distribute import prepare_model, refuse_time_limit_in_cluster, role_of, shardable
from nlp_lstm.layers import LSTM
from nlp_lstm.ngrams import fit_ngram_logistic, ngram_probability
from nlp_lstm.run_folder import (
    begin_writing,
    check_vocabulary,
    drop_backup,
    finish_run,
    retrain_hint,
    run_config,
    start_run,
)
from nlp_lstm.sentiment_config import (  # noqa: F401  (re-exported)
    LEARNING_RATE_DECAYS,
    SentimentConfig,
    dry_run_config,
)
from nlp_lstm.text import (
    OOV_ID,
    VectorizerConfig,
    build_vectorizer,
    load_vocabulary,
    make_classification_dataset,
    vectorizer_from_vocabulary,
)
from nlp_lstm.training import (
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    FitConfig,
    ModelFolderError,
    atomic_write_json,
    cluster_vocabulary,
    fit,
    read_model_config,
    require_files,
    training_time_s,
    worker_folder,
    write_metrics_json,
)

APP = "sentiment"
VOCABULARY_FILE = "vocabulary.txt"
DEFAULT_MODEL_DIR = "saved_models/sentiment"
# What the data config contributes to a model's identity (a resumed run must match it).
_DATA_KEYS = ("source", "val_fraction", "seed", "limit")


def sentiment_fit_config(config: SentimentConfig, dry_run: bool = False, verbose: int | None = None) -> FitConfig:
    """How `nlp_lstm.training.fit` trains the sentiment model: best and early stop by val accuracy."""
    return FitConfig(
        epochs=config.epochs,
        seed=config.seed,
        monitor="val_accuracy",
        mode="max",
        patience=config.patience,
        backup_every=config.backup_every,
        dry_run=dry_run,
        verbose=verbose,
        max_minutes=config.max_train_minutes,
        units_per_step=config.batch_size,  # the last batch of an epoch may hold fewer: the rate is near, not exact
        units="reviews",
    )


@keras.saving.register_keras_serializable(package="nlp_lstm")
class MaskedGlobalMaxPooling1D(layers.Layer):
    """Max over the unmasked time steps (keras.layers.GlobalMaxPooling1D ignores the mask).

    A sequence with every step masked pools to zeros.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment import MaskedGlobalMaxPooling1D
    >>> x = np.array([[[-1.0], [-2.0], [0.0]]], "float32")  # (1, 3, 1); the last step is padding
    >>> MaskedGlobalMaxPooling1D()(x, mask=np.array([[True, True, False]])).numpy().tolist()
    [[-1.0]]
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.max(inputs, axis=1)
        kept = ops.expand_dims(ops.cast(mask, "bool"), -1)  # (batch, time, 1)
        pooled = ops.max(ops.where(kept, inputs, float("-inf")), axis=1)  # (batch, features)
        return ops.where(ops.any(kept, axis=1), pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])


def build_sentiment_model(config: SentimentConfig, vocabulary_size: int | None = None) -> keras.Model:
    """The uncompiled classifier: token ids (batch, time) int64 -> P(pos) per member (batch, members).

    The members are the BiLSTM classifier, then the n-gram member when `config.ngram_buckets` > 0.

    Args:
        config: Sizes and dropout.
        vocabulary_size: Rows of the embedding; default `config.max_tokens` (a small corpus can give fewer).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment import SentimentConfig, build_sentiment_model
    >>> config = SentimentConfig(max_tokens=50, embedding_dim=8, units=4, ngram_buckets=64)
    >>> model = build_sentiment_model(config)
    >>> tuple(model(np.array([[5, 7, 0, 0], [3, 0, 0, 0]])).shape)
    (2, 2)
    """
    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")  # (batch, time)
    rows = vocabulary_size or config.max_tokens
    x = layers.Embedding(rows, config.embedding_dim, mask_zero=True, name="embedding")(token_ids)  # (b, t, e), mask
    x = layers.Dropout(config.embedding_dropout, seed=config.seed, name="embedding_dropout")(x)
    x = layers.Bidirectional(LSTM(config.units, return_sequences=True), name="bilstm")(x)  # (batch, time, 2u)
    max_pooled = MaskedGlobalMaxPooling1D(name="max_pool")(x)
    mean_pooled = layers.GlobalAveragePooling1D(name="mean_pool")(x)
    pooled = layers.Concatenate(name="pooled")([max_pooled, mean_pooled])  # (batch, 4u)
    pooled = layers.Dropout(config.head_dropout, seed=config.seed + 1, name="head_dropout")(pooled)
    probability = layers.Dense(1, activation="sigmoid", name="probability")(pooled)  # (batch, 1)
    if config.ngram_buckets:
        ngram = ngram_probability(token_ids, rows, config.ngram_buckets)  # (batch, 1)
        probability = layers.Concatenate(name="members")([probability, ngram])  # (batch, 2)
    return keras.Model(token_ids, probability, name="sentiment_bilstm")


def positive_probability(model: keras.Model, ids: Any) -> Any:
    """P(pos) (batch,): the mean of the members' probabilities for token ids (batch, time), not training."""
    return ops.mean(model(ids, training=False), axis=-1)


@keras.saving.register_keras_serializable(package="nlp_lstm")
class MeanProbabilityAccuracy(keras.metrics.BinaryAccuracy):
    """Binary accuracy of the members' mean probability (batch, members) -> (batch, 1)."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(y_true, ops.mean(y_pred, axis=-1, keepdims=True), sample_weight)


@keras.saving.register_keras_serializable(package="nlp_lstm")
class MembersBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy of each member's probability (batch, members) against the label, averaged.

    Labels (batch,) or (batch, 1). With one member it is `keras.losses.BinaryCrossentropy`.
    """

    def __init__(self, name: str = "members_binary_crossentropy", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.broadcast_to(ops.cast(ops.reshape(y_true, (-1, 1)), y_pred.dtype), ops.shape(y_pred))
        # A trailing axis of 1 makes binary_crossentropy score each member alone: (batch, members).
        per_member = keras.losses.binary_crossentropy(y_true[..., None], y_pred[..., None])
        return ops.mean(per_member, axis=-1)  # (batch,)


def compile_sentiment_model(model: keras.Model, config: SentimentConfig, steps_per_epoch: int = 1) -> keras.Model:
    """Compiles with Adam (clipped), binary cross-entropy and an "accuracy" metric; returns the model.

    With `config.learning_rate_decay` "cosine" the rate follows `keras.optimizers.schedules.CosineDecay`
    over `config.epochs * steps_per_epoch` steps, then stays at 0.

    The loss is each member's cross-entropy, averaged: a member's gradient is the one it would get
    if trained alone. "accuracy" is the accuracy of the members' mean, the model's verdict.
    """
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.learning_rate_decay == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=config.clipnorm),
        loss=MembersBinaryCrossentropy(),
        metrics=[MeanProbabilityAccuracy(name="accuracy")],
    )
    return model


def vectorize_texts(vectorizer: layers.TextVectorization, texts: tf.Tensor, max_length: int) -> tf.Tensor:
    """Texts (batch,) tf.string -> token ids (batch, <= max_length) int64, 0-padded: the model's input.

    The same ids `text.make_classification_dataset` gives in training (first `max_length` tokens; a
    text with no token left becomes '[UNK]'), built from tensors only, so that it traces into the
    exported SavedModel.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.sentiment import vectorize_texts
    >>> from nlp_lstm.text import VectorizerConfig, vectorizer_from_vocabulary
    >>> vectorizer = vectorizer_from_vocabulary(["", "[UNK]", "good", "film"], VectorizerConfig())
    >>> vectorize_texts(vectorizer, tf.constant(["good film good", "   ", "film"]), 2).numpy().tolist()
    [[2, 3], [1, 0], [3, 0]]
    """
    ids = vectorizer(texts)  # (batch, longest text) int64, 0-padded
    if isinstance(ids, tf.RaggedTensor):
        ids = ids.to_tensor()
    ids = ids[:, :max_length]
    # At least one column, so that an all-empty batch still has a step to put '[UNK]' in.
    ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
    first = tf.where(tf.equal(ids[:, 0], 0), tf.constant(OOV_ID, ids.dtype), ids[:, 0])  # (batch,)
    return tf.concat([first[:, None], ids[:, 1:]], axis=1)


def _folder_config(config: SentimentConfig, data_config: DataConfig, vocabulary_size: int | None) -> dict[str, Any]:
    return {
        "app": APP,
        "nlp_lstm_version": __version__,
        "labels": list(LABEL_NAMES),
        "sentiment": asdict(config),
        # An absolute source, so that evaluate can find the data again from any folder.
        "data": {
            **{key: getattr(data_config, key) for key in _DATA_KEYS},
            "source": os.path.abspath(data_config.source) if data_config.source else None,
        },
        "vocabulary_size": vocabulary_size,
    }


def _same_run(out: Path, config: SentimentConfig, data_config: DataConfig) -> bool:
    """Whether out/config.json describes a run of `config` on `data_config` (so its backup may be resumed).

    Compared as configs, not as JSON: a relative data path matches its absolute form.
    """
    try:
        saved = read_model_config(out, APP)
        saved_config = SentimentConfig.from_dict(saved["sentiment"])
        saved_data = dict(saved["data"])
    except (ModelFolderError, KeyError, TypeError, ValueError):
        return False
    if saved_data.get("source") is not None:
        saved_data["source"] = os.path.abspath(saved_data["source"])
    return saved_config == config and saved_data == _folder_config(config, data_config, None)["data"]


def _predicted_probabilities(model: keras.Model, ids_and_labels: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(P(pos) (n,), labels (n,)) over a dataset of (ids, labels) batches, in one pass."""
    # One trace for every batch shape, instead of one per bucket width.
    forward = tf.function(
        lambda ids: positive_probability(model, ids), input_signature=[tf.TensorSpec([None, None], tf.int64)]
    )
    probabilities, labels = [], []
    for ids, batch_labels in ids_and_labels:
        probabilities.append(forward(ids).numpy())
        labels.append(batch_labels.numpy())
    if not probabilities:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.concatenate(probabilities), np.concatenate(labels)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 of pos, and the confusion matrix [[tn, fp], [fn, tp]].

    A probability >= 0.5 is pos. Rows of the confusion matrix are the true label (neg,
    pos), columns the predicted one.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment import classification_metrics
    >>> m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.7, 0.8, 0.9]))
    >>> m["accuracy"], m["precision"], m["recall"], m["confusion_matrix"]
    (0.75, 0.6666666666666666, 1.0, [[1, 1], [0, 2]])
    """
    labels = np.asarray(labels).astype(np.int64)
    predicted = (np.asarray(probabilities) >= 0.5).astype(np.int64)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    n = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def _fit_ngram_member(
    model: keras.Model,
    config: SentimentConfig,
    splits: ImdbSplits,
    vectorizer: layers.TextVectorization,
    log: Any,
) -> None:
    """Fits the n-gram member on the training split's ids, as the model reads them, and sets its weights."""
    hashed, member = model.get_layer("ngram_ids"), model.get_layer("ngram_probability")
    batches = make_classification_dataset(
        splits.train, vectorizer, config.batch_size, config.max_length, shuffle=False, seed=config.seed
    )
    fitted = fit_ngram_logistic(
        ((hashed(ids).numpy(), labels.numpy()) for ids, labels in batches), member.rows, c=config.ngram_c, log=log
    )
    member.set_weights([fitted.weights, np.array([fitted.bias], "float32")])


def train_sentiment(
    data_config: DataConfig,
    config: SentimentConfig,
    out_dir: str | os.PathLike = DEFAULT_MODEL_DIR,
    fit_config: FitConfig | None = None,
    overwrite: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy: tf.distribute.Strategy | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Trains the classifier on train, picks the epoch by val accuracy, scores it once on test.

    Rerunning the same call after an interruption resumes it. A folder that holds a finished
    model (a metrics.json) is refused unless `overwrite`; so is one holding an interrupted run of
    another configuration.

    Args:
        data_config: Where the reviews come from and the validation split.
        config: The model and its training schedule.
        out_dir: The model folder to write.
        fit_config: How `fit` trains; default `sentiment_fit_config(config)`.
        overwrite: Replace a finished model, or drop an interrupted run of another configuration.
        callbacks: More Keras callbacks for `fit`.
        strategy: The `tf.distribute` strategy to train under (`nlp_lstm.distribute.make_strategy`);
            default the current one. In a multi-worker run only the chief writes `out_dir` and
            scores the model on test; the other workers train beside it and keep only a backup.
        command: The command line to name in hints (saved in config.json).

    Returns:
        The metrics written to out_dir/metrics.json (on a worker other than the chief, what it did).

    Raises:
        DataError: The data cannot be read, or leaves no validation reviews.
        OutputFolderError: `out_dir` is not writable, or holds a model that would be lost.

    Example (``acl_imdb``: a tiny aclImdb folder the test makes):

    >>> import pathlib, tempfile
    >>> from nlp_lstm.data import DataConfig
    >>> from nlp_lstm.sentiment import dry_run_config, train_sentiment
    >>> from nlp_lstm.training import FitConfig
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "sentiment"
    >>> metrics = train_sentiment(DataConfig(source=acl_imdb, verbose=False), dry_run_config(), out,
    ...                           fit_config=FitConfig(dry_run=True, verbose=0, tensorboard=False))
    >>> metrics["epochs"], metrics["test"]["n"], (out / "model.keras").exists()
    (1, 4, True)
    """
    start = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    role = role_of(strategy)
    refuse_time_limit_in_cluster(role, config.max_train_minutes, "--epochs")
    plan = None
    if role.chief:
        plan = start_run(out_dir, overwrite, lambda folder: _same_run(folder, config, data_config))
        out, resuming = plan.work, plan.resuming
    else:
        out, resuming = worker_folder(out_dir, role), False
    fit_config = fit_config or sentiment_fit_config(config)

    splits = load_imdb(replace(data_config, include_unsup=False))
    if splits.sizes["val"] == 0:
        raise DataError(
            f"no validation reviews (val_fraction={data_config.val_fraction}, {splits.sizes['train']} training "
            f"reviews): the best epoch is picked on validation, so pass a larger --val-fraction or --limit"
        )
    if plan is not None:
        begin_writing(plan)
    vectorizer = cluster_vocabulary(
        strategy,
        out_dir,
        out,
        resuming,
        lambda: build_vectorizer(splits.train, VectorizerConfig(max_tokens=config.max_tokens)),
    )
    vocabulary_size = vectorizer.vocabulary_size()
    if role.chief:
        atomic_write_json(
            out / CONFIG_FILE, run_config(_folder_config(config, data_config, vocabulary_size), out, command)
        )

    def batches(ds: tf.data.Dataset, shuffle: bool) -> tf.data.Dataset:
        return shardable(make_classification_dataset(
            ds, vectorizer, config.batch_size, config.max_length, shuffle, config.seed, fixed_widths=role.replicas > 1
        ))  # fmt: skip

    keras.utils.set_random_seed(config.seed)  # before the datasets: their shuffles draw on the global seed
    train_batches = batches(splits.train, True)
    steps_per_epoch = 1
    if config.learning_rate_decay != "none" and not fit_config.dry_run:
        # One pass, which also fills the pipeline's token cache. Every worker of a cluster takes as many
        # steps as one process would (each step's global batch is split between them).
        steps_per_epoch = max(1, int(train_batches.reduce(0, lambda count, _: count + 1).numpy()))
    keras.utils.set_random_seed(config.seed)  # again: the weights must not depend on what the datasets drew
    with strategy.scope():
        model = compile_sentiment_model(build_sentiment_model(config, vocabulary_size), config, steps_per_epoch)
    ngram_s = 0.0
    if config.ngram_buckets and not resuming:  # a resumed run restores its weights from the backup instead
        ngram_start = time.perf_counter()
        _fit_ngram_member(model, config, splits, vectorizer, print if data_config.verbose else None)
        ngram_s = time.perf_counter() - ngram_start
    model = prepare_model(model, strategy)
    result = fit(model, train_batches, batches(splits.val, False), out, fit_config, callbacks, role.chief)
    if not role.chief:
        drop_backup(out)
        return {"app": APP, "task": role.task, "epochs": result.epochs_done, "dry_run": fit_config.dry_run}

    # Test, once.
    probabilities, labels = _predicted_probabilities(model, batches(splits.test, False))
    test = classification_metrics(labels, probabilities)
    metrics = {
        "app": APP,
        "val_accuracy": result.best,
        "test_accuracy": test["accuracy"],
        "test": test,
        "best_epoch": None if result.best_epoch is None else result.best_epoch + 1,
        "epochs": result.epochs_done,
        "resumed_at_epoch": result.initial_epoch if result.resumed else None,
        "train_time_s": round(training_time_s(out), 3),
        "ngram_fit_time_s": round(ngram_s, 3),
        "sizes": splits.sizes,
        "replicas": role.replicas,
        "workers": role.workers,
        "dry_run": fit_config.dry_run,
    }
    written = write_metrics_json(out / METRICS_FILE, metrics, time.perf_counter() - start)
    finish_run(plan)
    return written


@dataclass(frozen=True)
class SentimentModel:
    """A loaded model folder: the Keras model, the vectorizer of its saved vocabulary, its config,
    and the data source it was trained on (None: tensorflow-datasets)."""

    model: keras.Model
    vectorizer: layers.TextVectorization
    config: SentimentConfig
    folder: Path
    data_source: str | None = None


def load_sentiment_model(model_dir: str | os.PathLike = DEFAULT_MODEL_DIR) -> SentimentModel:
    """Loads and checks a sentiment model folder.

    Raises:
        ModelFolderError: The folder is missing, is another app's, lacks a file, or a file is corrupt.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> from nlp_lstm.sentiment import load_sentiment_model
    >>> loaded = load_sentiment_model(model_dir)
    >>> loaded.vectorizer.vocabulary_size() == loaded.model.get_layer("embedding").input_dim
    True
    """
    folder = Path(model_dir).expanduser()
    saved = read_model_config(folder, APP)
    require_files(folder, (MODEL_FILE, VOCABULARY_FILE), saved)
    check_vocabulary(folder, saved)
    try:
        config = SentimentConfig.from_dict(saved["sentiment"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFolderError(f"{folder / CONFIG_FILE} has no valid sentiment config ({error})") from error
    try:
        vocabulary = load_vocabulary(folder / VOCABULARY_FILE)
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"cannot read {folder / VOCABULARY_FILE} ({error})") from error
    try:
        model = keras.models.load_model(folder / MODEL_FILE, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged file; all mean the same here
        raise ModelFolderError(
            f"cannot load {folder / MODEL_FILE} ({type(error).__name__}); the file is damaged: train "
            f"again ({retrain_hint(folder, saved, APP)})"
        ) from error
    try:
        embedding_rows = model.get_layer("embedding").input_dim
    except ValueError:
        raise ModelFolderError(f"{folder / MODEL_FILE} is not a sentiment model (it has no embedding layer)") from None
    if embedding_rows != len(vocabulary):
        raise ModelFolderError(
            f"{folder / VOCABULARY_FILE} has {len(vocabulary)} tokens but the model embeds {embedding_rows}: "
            f"the files come from different training runs"
        )
    vectorizer = vectorizer_from_vocabulary(vocabulary, VectorizerConfig(None))
    data_source = saved.get("data", {}).get("source") if isinstance(saved.get("data"), dict) else None
    return SentimentModel(model, vectorizer, config, folder, data_source)


def _as_model(model: SentimentModel | str | os.PathLike) -> SentimentModel:
    return model if isinstance(model, SentimentModel) else load_sentiment_model(model)


def evaluate_sentiment(
    model_dir: SentimentModel | str | os.PathLike, data_config: DataConfig, batch_size: int | None = None
) -> dict[str, Any]:
    """Scores a trained model on the test split: accuracy, precision, recall, F1, confusion matrix.

    Example (``model_dir``, ``acl_imdb``: a tiny model and data the test makes):

    >>> from nlp_lstm.data import DataConfig
    >>> from nlp_lstm.sentiment import evaluate_sentiment
    >>> metrics = evaluate_sentiment(model_dir, DataConfig(source=acl_imdb, verbose=False))
    >>> metrics["n"], sum(map(sum, metrics["confusion_matrix"]))
    (4, 4)
    """
    loaded = _as_model(model_dir)
    splits = load_imdb(replace(data_config, include_unsup=False))
    test = make_classification_dataset(
        splits.test, loaded.vectorizer, batch_size or loaded.config.batch_size, loaded.config.max_length,
        shuffle=False, seed=loaded.config.seed,
    )  # fmt: skip
    probabilities, labels = _predicted_probabilities(loaded.model, test)
    return classification_metrics(labels, probabilities)


class Prediction(NamedTuple):
    """One text's verdict: `label` "neg" or "pos", `probability` = P(pos), `judged` True.

    A text the model cannot judge (empty, or no word of it in the vocabulary: every token [UNK]) is
    not labelled: `label` is "none" (`UNJUDGED_LABEL`), `probability` NaN and `judged` False.
    """

    label: str
    probability: float
    judged: bool = True


UNJUDGED_LABEL = "none"


def _to_bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text  # standardize turns bytes that are not UTF-8 into U+FFFD
    try:
        # surrogateescape gives back the bytes of a command-line argument that was not UTF-8.
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")


def predict_sentiment(
    model_dir: SentimentModel | str | os.PathLike, texts: Iterable[str | bytes], batch_size: int = 64
) -> list[Prediction]:
    """Labels each text: (label, P(pos), judged). Any text works: empty, huge, not UTF-8, emoji, any script.

    A text with no word the model knows (empty, white space, or every word out of the vocabulary:
    another language, say) gets no label: ("none", NaN, False). The model would answer it with its
    bias alone, the same for every such text, which says nothing about the text.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> from nlp_lstm.sentiment import predict_sentiment
    >>> judged, empty = predict_sentiment(model_dir, ["Great!", ""])
    >>> judged.label in ("neg", "pos") and 0 <= judged.probability <= 1, judged.judged
    (True, True)
    >>> empty.label, empty.judged
    ('none', False)
    """
    loaded = _as_model(model_dir)
    encoded = [_to_bytes(text) for text in texts]
    predictions: list[Prediction] = []
    for begin in range(0, len(encoded), batch_size):
        ids = vectorize_texts(loaded.vectorizer, tf.constant(encoded[begin : begin + batch_size], tf.string),
                              loaded.config.max_length)  # (batch, time)  # fmt: skip
        known = ops.convert_to_numpy(ops.any(ids > OOV_ID, axis=1))  # (batch,): a word other than padding, [UNK]
        probabilities = ops.convert_to_numpy(positive_probability(loaded.model, ids))  # (batch,)
        predictions += [
            Prediction(LABEL_NAMES[int(p >= 0.5)], float(p)) if judged
            else Prediction(UNJUDGED_LABEL, math.nan, False)
            for p, judged in zip(probabilities, known, strict=True)
        ]  # fmt: skip
    return predictions
