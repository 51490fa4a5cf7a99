"""Scoring a sentiment model: accuracy, precision, recall, F1 and the confusion matrix."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from nlp_lstm.data import load_imdb
from nlp_lstm.data_config import DataConfig
from nlp_lstm.sentiment.model import positive_probability
from nlp_lstm.sentiment.predict import SentimentModel, as_sentiment_model
from nlp_lstm.text import (
    make_classification_dataset,
)


def predicted_probabilities(model: keras.Model, ids_and_labels: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
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
    >>> from nlp_lstm.sentiment.evaluate import classification_metrics
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


def evaluate_sentiment(
    model_dir: SentimentModel | str | os.PathLike, data_config: DataConfig, batch_size: int | None = None
) -> dict[str, Any]:
    """Scores a trained model on the test split: accuracy, precision, recall, F1, confusion matrix.

    Example (``model_dir``, ``acl_imdb``: a tiny model and data the test makes):

    >>> from nlp_lstm.data_config import DataConfig
    >>> from nlp_lstm.sentiment.evaluate import evaluate_sentiment
    >>> metrics = evaluate_sentiment(model_dir, DataConfig(source=acl_imdb, verbose=False))
    >>> metrics["n"], sum(map(sum, metrics["confusion_matrix"]))
    (4, 4)
    """
    loaded = as_sentiment_model(model_dir)
    splits = load_imdb(replace(data_config, include_unsup=False))
    test = make_classification_dataset(
        splits.test, loaded.vectorizer, batch_size or loaded.config.batch_size, loaded.config.max_length,
        shuffle=False, seed=loaded.config.seed,
    )  # fmt: skip
    probabilities, labels = predicted_probabilities(loaded.model, test)
    return classification_metrics(labels, probabilities)
