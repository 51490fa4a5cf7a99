"""Export of the next-word model for serving: a SavedModel in TF Serving's layout, EXPORT_DIR/<version>/.

Two signatures, loadable with TensorFlow alone (no nlp_lstm, no Keras):

    serving_default(text: tf.string [batch])
        -> words          tf.string  [batch, k]  the k likeliest next words, best first
           probabilities  float32    [batch, k]  their probabilities (over the suggestible words:
                                                 '', [UNK] and [BOS] are never suggested)
    step(token_ids: int64 [batch], states: float32 [batch, 2 * layers, units])
        -> logits  float32 [batch, vocab]        next-token logits after feeding token_ids
           states  float32 [batch, 2 * layers, units]

`serving_default` reads each text as the prompt does: [BOS], then the text's tokens (the saved
vocabulary and `nlp_lstm.text.standardize`, traced into plain TF string ops), then the suggestions
after its last word. `step` is incremental decoding for a client that keeps the states: start from
zeros, feed [BOS] (id 2; the vocabulary is in assets.extra/vocabulary.txt, one token per line, line
n = id n - 1), then one token per call. Both equal the in-memory model to 1e-5 (tests/test_nextword_export.py).

    import tensorflow as tf
    served = tf.saved_model.load("EXPORT_DIR/1")
    served.signatures["serving_default"](text=tf.constant(["the movie was"]))["words"]
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nlp_lstm.nextword.config import DEFAULT_MODEL_DIR
from nlp_lstm.nextword.generate import banned_ids
from nlp_lstm.nextword.model import NextWordFolder, load_nextword_folder
from nlp_lstm.run_folder import VOCABULARY_FILE
from nlp_lstm.serving import Endpoint, write_next_version, write_string_archive
from nlp_lstm.text import BOUNDARY_TOKEN, VectorizerConfig, vectorizer_from_vocabulary

DEFAULT_TOP_K = 5


def export_nextword(
    model_dir: str = DEFAULT_MODEL_DIR, export_dir: str = "exports/nextword", top_k: int = DEFAULT_TOP_K
) -> Path:
    """Exports a next-word model folder as a SavedModel; returns EXPORT_DIR/<version>.

    Args:
        model_dir: The model folder a training run wrote.
        export_dir: The folder holding the versions (TF Serving watches it).
        top_k: Suggestions per text in `serving_default`.

    Raises:
        ModelFolderError: `model_dir` is not a usable next-word model folder.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> import pathlib, tempfile
    >>> import tensorflow as tf
    >>> from nlp_lstm.nextword.export import export_nextword
    >>> path = export_nextword(model_dir, pathlib.Path(tempfile.mkdtemp()) / "exports", top_k=3)
    >>> served = tf.saved_model.load(str(path))
    >>> outputs = served.signatures["serving_default"](text=tf.constant(["the film", ""]))
    >>> path.name, outputs["words"].shape.as_list(), outputs["probabilities"].dtype.name
    ('1', [2, 3], 'float32')
    """
    loaded = load_nextword_folder(model_dir)
    vectorizer = vectorizer_from_vocabulary(loaded.vocabulary, VectorizerConfig(None))

    def write(folder: Path) -> None:
        write_string_archive(folder, loaded.model, vectorizer, nextword_endpoints(loaded, top_k, vectorizer))
        (folder / "assets.extra").mkdir(exist_ok=True)
        shutil.copyfile(loaded.folder / VOCABULARY_FILE, folder / "assets.extra" / VOCABULARY_FILE)

    return write_next_version(export_dir, write)


def nextword_endpoints(
    loaded: NextWordFolder, top_k: int = DEFAULT_TOP_K, vectorizer: keras.layers.TextVectorization | None = None
) -> dict[str, Endpoint]:
    """The signatures of a next-word model (`serving_default`, `step`): what the export writes and what
    `nlp-lstm serve` runs."""
    model, vocabulary = loaded.model, loaded.vocabulary
    config = model.config
    banned = banned_ids(vocabulary)
    k = min(top_k, len(vocabulary) - len(banned))
    vectorizer = vectorizer or vectorizer_from_vocabulary(vocabulary, VectorizerConfig(None))
    boundary_id = vocabulary.index(BOUNDARY_TOKEN)
    ban = np.zeros(len(vocabulary), np.float32)
    ban[banned] = -np.inf
    ban = tf.constant(ban)  # (vocab,)
    words_table = tf.constant(vocabulary, tf.string)  # (vocab,)

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = vectorizer(text)  # (batch, longest) int64, 0-padded at the end
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor()
        starts = tf.fill([tf.shape(ids)[0], 1], tf.constant(boundary_id, ids.dtype))
        ids = tf.concat([starts, ids], axis=1)  # (batch, 1 + longest)
        # Masked (padding) steps keep the state: the final states are those after each text's last word.
        _, states = model.features(ids, mask=tf.not_equal(ids, 0))
        logits = model.logits(states[:, -2]) + ban  # states[:, -2] is the top layer's h; (batch, vocab)
        top = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=k)
        return {"words": tf.gather(words_table, top.indices), "probabilities": top.values}

    def step(token_ids: tf.Tensor, states: tf.Tensor) -> dict[str, tf.Tensor]:
        logits, states = model.step(token_ids, states)
        return {"logits": logits, "states": states}

    step_signature = [
        tf.TensorSpec([None], tf.int64, name="token_ids"),
        tf.TensorSpec([None, config.state_width, config.units], tf.float32, name="states"),
    ]
    return {
        "serving_default": Endpoint(serve, [tf.TensorSpec([None], tf.string, name="text")]),
        "step": Endpoint(step, step_signature),
    }
