"""The sentiment export: a TensorFlow SavedModel in TF Serving's layout, EXPORT_DIR/<version>/.

The layout and the helpers both exports use are in `nlp_lstm.serving`.

The sentiment export, `export_sentiment(model_dir, export_dir)`: a string-in SavedModel whose
`serving_default` signature takes `text` (tf.string, [None]: raw reviews, any bytes) and returns

    probability  float32 [None]  P(pos)
    label        int64   [None]  1 (pos) if probability >= 0.5, else 0
                                 (neg): nlp_lstm.data.LABEL_NAMES
    judged       bool    [None]  False for a text with no word the model knows (empty, another
                                 language): its probability is the model's bias alone, not a verdict

Inside: the TextVectorization of the saved vocabulary with `nlp_lstm.text.standardize` (plain TF
string ops, traced into the graph), `sentiment.model.vectorize_texts` and the trained model. Loading it
needs TensorFlow alone:

    import tensorflow as tf
    serve = tf.saved_model.load("EXPORT_DIR/1").signatures["serving_default"]
    serve(text=tf.constant(["A wonderful film."]))["probability"]
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from nlp_lstm.sentiment.model import positive_probability, vectorize_texts
from nlp_lstm.sentiment.predict import SentimentModel, load_sentiment_model
from nlp_lstm.serving import Endpoint, write_next_version, write_string_archive
from nlp_lstm.text import OOV_ID


def export_sentiment(model_dir: str | os.PathLike, export_dir: str | os.PathLike) -> Path:
    """Exports a sentiment model folder as a string-in SavedModel; returns EXPORT_DIR/<version>.

    Raises:
        ModelFolderError: `model_dir` is not a usable sentiment model folder.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> import pathlib, tempfile
    >>> import tensorflow as tf
    >>> from nlp_lstm.sentiment.export import export_sentiment
    >>> path = export_sentiment(model_dir, pathlib.Path(tempfile.mkdtemp()) / "exports")
    >>> serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    >>> outputs = serve(text=tf.constant(["Loved it!", ""]))
    >>> path.name, sorted(outputs), outputs["judged"].numpy().tolist()
    ('1', ['judged', 'label', 'probability'], [True, False])
    """
    loaded = load_sentiment_model(model_dir)

    def write(folder: Path) -> None:
        write_string_archive(folder, loaded.model, loaded.vectorizer, sentiment_endpoints(loaded))

    return write_next_version(export_dir, write)


def sentiment_endpoints(loaded: SentimentModel) -> dict[str, Endpoint]:
    """The signatures of a sentiment model: what the export writes and what `nlp-lstm serve` runs."""
    model, vectorizer, max_length = loaded.model, loaded.vectorizer, loaded.config.max_length

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = vectorize_texts(vectorizer, text, max_length)  # (batch, time) int64
        probability = positive_probability(model, ids)  # (batch,) float32, the members' mean
        return {
            "probability": probability,
            "label": tf.cast(probability >= 0.5, tf.int64),
            "judged": tf.reduce_any(ids > OOV_ID, axis=1),  # a word other than padding and [UNK]
        }

    return {"serving_default": Endpoint(serve, [tf.TensorSpec([None], tf.string, name="text")])}
