"""Helpers of the next-word tests: a toy corpus and a model folder written without training (fast)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nlp_lstm.data_config import CorpusConfig
from nlp_lstm.files import atomic_save_model, atomic_write_json
from nlp_lstm.nextword.config import NextWordConfig, dry_run_config
from nlp_lstm.nextword.model import build_nextword_model
from nlp_lstm.nextword.train import _folder_config
from nlp_lstm.run_folder import CONFIG_FILE, MODEL_FILE, VOCABULARY_FILE, run_config
from nlp_lstm.text import BOUNDARY_TOKEN, VectorizerConfig, build_vectorizer, save_vocabulary

TOY_TEXTS = [
    "The movie was great and the acting was great too.",
    "The film was bad, the plot was bad and the acting was worse.",
    "I loved the movie; the story was moving and the cast was great!",
    "What a boring film. I hated the plot and the ending.",
    "The acting was good but the story was not very good.",
    "A great cast, a great story: a great movie.",
]


def toy_corpus_file(folder: Path, paragraphs: int = 40, seed: int = 0) -> Path:
    """A UTF-8 text file of `paragraphs` blank-line-separated toy reviews (and one Latin-1 byte)."""
    rng = np.random.default_rng(seed)
    chosen = [TOY_TEXTS[i] for i in rng.integers(0, len(TOY_TEXTS), paragraphs)]
    path = folder / "corpus.txt"
    path.write_bytes("\n\n".join(chosen).encode("utf-8") + b"\n\nCaf\xe9 was great.\n")
    return path


def write_model_folder(folder: Path, num_layers: int = 1, units: int = 8, seed: int = 0, scale: float = 3.0) -> Path:
    """A next-word model folder as a training run leaves it, with random weights (scaled, so that the
    next-word probabilities differ clearly and a top-k has no near-ties)."""
    config: NextWordConfig = replace(
        dry_run_config(), num_layers=num_layers, units=units, embedding_dim=units, seed=seed
    )
    texts = tf.data.Dataset.from_tensor_slices(TOY_TEXTS)
    vectorizer = build_vectorizer(texts, VectorizerConfig(max_tokens=60, reserved_tokens=(BOUNDARY_TOKEN,)))
    vocabulary = vectorizer.get_vocabulary()
    keras.utils.set_random_seed(seed)
    model = build_nextword_model(config.model_config(len(vocabulary)))
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0, scale / np.sqrt(weight.shape[0]), weight.shape).astype("float32"))
    folder.mkdir(parents=True, exist_ok=True)
    save_vocabulary(vocabulary, folder / VOCABULARY_FILE)
    atomic_save_model(model, folder / MODEL_FILE)
    corpus = CorpusConfig(files=("corpus.txt",))
    atomic_write_json(folder / CONFIG_FILE, run_config(_folder_config(config, corpus, len(vocabulary)), folder, None))
    return folder
