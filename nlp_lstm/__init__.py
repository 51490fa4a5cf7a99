"""nlp_lstm: an LSTM written from the gate equations in Keras 3, and two apps built on it.

    nlp_lstm.LSTM, nlp_lstm.LSTMCell                 the layer and its cell (keras.layers.LSTM's weights)
    nlp_lstm.sentiment.load(path).predict(texts)     IMDB sentiment: labels, P(pos), judged or not
    nlp_lstm.nextword.load(path).suggest(text, k)    the next word, as the prompt suggests it
    nlp_lstm.nextword.load(path).generate(text, n, rule="greedy", seed=None)

Importing the package registers every custom object the project saves (the layer, the cell, the
sentiment model's pooling, loss and metric, the next-word model) with Keras, so that
`keras.models.load_model` opens any model file it writes. Keras, and with it TensorFlow, loads on
first use rather than on `import nlp_lstm`: the command line checks every flag and quiets
TensorFlow's start-up before TensorFlow loads. So the registration waits for Keras: if Keras is
already imported it happens at once, otherwise when Keras's import completes (a post-import hook),
or, when the package's own code imported Keras, at the first `keras.models.load_model`.

Example:

>>> import keras
>>> import nlp_lstm
>>> layer = nlp_lstm.LSTM(4, return_sequences=True)
>>> tuple(layer(keras.ops.ones((2, 3, 5))).shape)
(2, 3, 4)
>>> keras.saving.get_registered_object("nlp_lstm>LSTM") is nlp_lstm.LSTM
True
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from nlp_lstm._version import __version__

# Modules whose classes Keras must find by name when it loads a saved model.
_CUSTOM_OBJECT_MODULES = ("nlp_lstm.cell", "nlp_lstm.layers", "nlp_lstm.sentiment.model", "nlp_lstm.nextword.model")
_LAZY = {"LSTM": "nlp_lstm.layers", "LSTMCell": "nlp_lstm.cell"}

__all__ = ["LSTM", "LSTMCell", "__version__", "nextword", "sentiment"]


def _initializing(module: Any) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _importing_ours() -> bool:
    """Whether one of the package's modules is being imported now (and may be half-initialised)."""
    return any(_initializing(module) for name, module in list(sys.modules.items()) if name.startswith("nlp_lstm."))


def _register_custom_objects() -> None:
    """Imports the modules that register the project's custom objects (each class registers itself)."""
    for name in _CUSTOM_OBJECT_MODULES:
        importlib.import_module(name)


def _on_keras_import(keras: Any) -> None:
    """Runs once, when Keras's import completes (or at once if Keras was imported before the package).

    Usually it registers everything there and then. But when Keras was imported by one of the package's
    own modules, importing the others now could meet that module half-initialised; then the
    registration waits for the first `keras.models.load_model` (or `keras.saving.load_model`), which
    this wraps, when every import has finished.
    """
    if not _importing_ours():
        _register_custom_objects()
        return
    from wrapt import wrap_function_wrapper

    def register_first(load_model: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        _register_custom_objects()
        return load_model(*args, **kwargs)

    for module in ("keras.models", "keras.saving"):
        wrap_function_wrapper(module, "load_model", register_first)


def __getattr__(name: str) -> Any:
    """`nlp_lstm.LSTM` and `nlp_lstm.LSTMCell`, imported (with Keras) on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nlp_lstm' has no attribute {name!r}")


def _hook_keras() -> None:
    # wrapt (a TensorFlow dependency) runs the hook now if Keras is imported, else right after its import.
    from wrapt import register_post_import_hook

    register_post_import_hook(_on_keras_import, "keras")


_hook_keras()

from nlp_lstm import nextword, sentiment  # noqa: E402  (the apps' `load`; neither imports TensorFlow here)
