"""The IMDB sentiment app: a BiLSTM and an NBSVM n-gram member, averaged.

    config.py    SentimentConfig (no TensorFlow)   ngrams.py    the n-gram member
    model.py     the Keras model, loss and metric  train.py     training into a model folder
    evaluate.py  test-split scores                 predict.py   a loaded folder, and its verdicts
    export.py    a string-in SavedModel

Example (``model_dir``: a folder a tiny training wrote):

>>> import nlp_lstm
>>> model = nlp_lstm.sentiment.load(model_dir)
>>> [(p.label in ("neg", "pos"), p.judged) for p in model.predict(["A wonderful film.", ""])]
[(True, True), (False, False)]
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nlp_lstm.sentiment.config import DEFAULT_MODEL_DIR

if TYPE_CHECKING:
    from nlp_lstm.sentiment.predict import SentimentModel


def load(path: str | os.PathLike = DEFAULT_MODEL_DIR) -> SentimentModel:
    """Loads a sentiment model folder (what `nlp-lstm train sentiment` wrote); see `SentimentModel.predict`.

    Raises:
        ModelFolderError: `path` is not a usable sentiment model folder.
    """
    from nlp_lstm.sentiment.predict import load_sentiment_model

    return load_sentiment_model(path)
