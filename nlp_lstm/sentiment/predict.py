"""A loaded sentiment model folder, and its verdicts on any texts."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import keras
import tensorflow as tf
from keras import layers, ops

from nlp_lstm.checks import check_count
from nlp_lstm.data import LABEL_NAMES
from nlp_lstm.run_folder import (
    CONFIG_FILE,
    MODEL_FILE,
    VOCABULARY_FILE,
    ModelFolderError,
    check_vocabulary,
    read_model_config,
    require_files,
    retrain_hint,
)
from nlp_lstm.sentiment.config import APP, DEFAULT_MODEL_DIR, SentimentConfig
from nlp_lstm.sentiment.model import positive_probability, vectorize_texts

if TYPE_CHECKING:
    from nlp_lstm.sentiment.explain import Explanation
from nlp_lstm.text import (
    OOV_ID,
    VectorizerConfig,
    load_vocabulary,
    text_bytes,
    vectorizer_from_vocabulary,
)


@dataclass(frozen=True)
class SentimentModel:
    """A loaded model folder: the Keras model, the vectorizer of its saved vocabulary, its config,
    and the data source it was trained on (None: tensorflow-datasets)."""

    model: keras.Model
    vectorizer: layers.TextVectorization
    config: SentimentConfig
    folder: Path
    data_source: str | None = None

    def predict(self, texts: str | bytes | Iterable[str | bytes], batch_size: int = 64) -> list[Prediction]:
        """Labels each text: a list of `Prediction(label, probability, judged)`, one per text, in order.

        A single string is one text. Any text works: empty, huge, not UTF-8, any script; one with no
        word the model knows is not judged: ("none", NaN, False).

        Example (``model_dir``: a folder a tiny training wrote):

        >>> import nlp_lstm
        >>> verdict, = nlp_lstm.sentiment.load(model_dir).predict("A wonderful film.")
        >>> verdict.label in ("neg", "pos"), 0 <= verdict.probability <= 1, verdict.judged
        (True, True, True)
        """
        return predict_sentiment(self, [texts] if isinstance(texts, str | bytes) else texts, batch_size)

    def explain(self, text: str | bytes, steps: int = 64) -> Explanation:
        """Each word's contribution to the verdict on `text`, per member and combined
        (`nlp_lstm.sentiment.explain`: exact for the n-gram member, integrated gradients for the LSTM).

        Example (``model_dir``: a folder a tiny training wrote):

        >>> import nlp_lstm
        >>> why = nlp_lstm.sentiment.load(model_dir).explain("A wonderful film!")
        >>> len(why.words) == len(why.combined), why.label in ("neg", "pos")
        (True, True)
        """
        from nlp_lstm.sentiment.explain import explain

        return explain(self, text, steps)


def load_sentiment_model(model_dir: str | os.PathLike = DEFAULT_MODEL_DIR) -> SentimentModel:
    """Loads and checks a sentiment model folder.

    Raises:
        ModelFolderError: The folder is missing, is another app's, lacks a file, or a file is corrupt.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> from nlp_lstm.sentiment.predict import load_sentiment_model
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


def as_sentiment_model(model: SentimentModel | str | os.PathLike) -> SentimentModel:
    return model if isinstance(model, SentimentModel) else load_sentiment_model(model)


class Prediction(NamedTuple):
    """One text's verdict: `label` "neg" or "pos", `probability` = P(pos), `judged` True.

    A text the model cannot judge (empty, or no word of it in the vocabulary: every token [UNK]) is
    not labelled: `label` is "none" (`UNJUDGED_LABEL`), `probability` NaN and `judged` False.
    """

    label: str
    probability: float
    judged: bool = True


UNJUDGED_LABEL = "none"


def predict_sentiment(
    model_dir: SentimentModel | str | os.PathLike, texts: Iterable[str | bytes], batch_size: int = 64
) -> list[Prediction]:
    """Labels each text: (label, P(pos), judged). Any text works: empty, huge, not UTF-8, emoji, any script.

    A text with no word the model knows (empty, white space, or every word out of the vocabulary:
    another language, say) gets no label: ("none", NaN, False). The model would answer it with its
    bias alone, the same for every such text, which says nothing about the text.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> from nlp_lstm.sentiment.predict import predict_sentiment
    >>> judged, empty = predict_sentiment(model_dir, ["Great!", ""])
    >>> judged.label in ("neg", "pos") and 0 <= judged.probability <= 1, judged.judged
    (True, True)
    >>> empty.label, empty.judged
    ('none', False)
    """
    check_count("batch_size", batch_size)
    loaded = as_sentiment_model(model_dir)
    encoded = [text_bytes(text) for text in texts]
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
