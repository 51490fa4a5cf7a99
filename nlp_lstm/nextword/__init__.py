"""The next-word app: a word-level LSTM language model on IMDB reviews (or your own text).

    config.py    NextWordConfig (no TensorFlow)     corpus.py      the texts, split
    model.py     the Keras model, a loaded folder   train.py       training into a model folder
    evaluate.py  perplexity and top-k, beside       kn_trigram.py  a Kneser-Ney trigram baseline
                 metrics.py
    generate.py  one decoding loop, its rules       prompt.py      suggestions as you type
    predict.py   a loaded folder, for code          export.py      a SavedModel with a `step` signature

Example (``model_dir``: a folder a tiny training wrote):

>>> import nlp_lstm
>>> model = nlp_lstm.nextword.load(model_dir)
>>> next_words = model.suggest("the movie ", k=2)  # after a space: the next word
>>> completions = model.suggest("the movie w", k=2)  # inside a word: its completions
>>> len(next_words), all(word.startswith("w") for word, _ in completions)
(2, True)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nlp_lstm.nextword.config import DEFAULT_MODEL_DIR

if TYPE_CHECKING:
    from nlp_lstm.nextword.predict import NextWordPredictor


def load(path: str | os.PathLike = DEFAULT_MODEL_DIR) -> NextWordPredictor:
    """Loads a next-word model folder (what `nlp-lstm train nextword` wrote); see `NextWordPredictor`.

    Raises:
        ModelFolderError: `path` is not a usable next-word model folder.
    """
    from nlp_lstm.nextword.predict import load as load_predictor

    return load_predictor(path)
