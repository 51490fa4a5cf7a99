"""The next-word language model: Embedding -> `nlp_lstm.layers.LSTM` (1-2 layers) -> projection.

    token ids (batch, time) --embedding--> (batch, time, embedding_dim)
        --LSTM x num_layers--> features (batch, time, units)
        --projection--> logits (batch, time, vocab_size)

Where the time goes on a CPU: the projection to a 20,000-word vocabulary costs `units * vocab_size`
multiply-adds per token, several times the LSTM itself, and training pays it three times (forward,
and the two backward products). So training uses a *sampled softmax* (Jean et al. 2015): each batch
draws `num_sampled` candidate words from a log-uniform (Zipf) distribution, which fits a vocabulary
sorted by frequency, and the loss is a softmax over the true word and those candidates, each logit
corrected by the log of its expected count so that the estimate of the full softmax is unbiased
enough to train on. Evaluation (validation loss, perplexity, suggestions) always uses the full softmax.

That is why `model(ids)` returns the LSTM *features* and `model.logits(features)` the projection: the
training step must not pay for the full projection. `compute_loss` picks the sampled or full loss.

Two ways to run the model, which the tests hold equal to 1e-5:
- `features(ids, states)`: a whole sequence through `keras.layers.RNN`'s loop (training, evaluation);
- `step(token_ids, states)`: one token per sequence through the cells (the prompt, generation, export),
  so that a typed word costs one step and never a re-read of the prefix.

States travel as one tensor (batch, 2 * num_layers, units), ordered h_0, c_0, h_1, c_1, ...: one
array to reorder for beam search, to stack in the prompt's history, and to put in a serving signature.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
from keras import ops

# Keras's own helper (no public name): divides by the replicas in sync under tf.distribute, a no-op elsewhere.
from keras.src.losses.loss import scale_loss_for_distribution

from nlp_lstm.data_config import CorpusConfig
from nlp_lstm.layers import LSTM
from nlp_lstm.nextword.config import (
    APP,
    DEFAULT_MODEL_DIR,
    NextWordConfig,
    NextWordModelConfig,
)
from nlp_lstm.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    VOCABULARY_FILE,
    ModelFolderError,
    check_vocabulary,
    read_model_config,
    require_files,
    retrain_hint,
)
from nlp_lstm.text import BOUNDARY_TOKEN, load_vocabulary


def log_uniform_log_expected_count(ids, vocab_size: int, num_sampled: int):
    """log(num_sampled * Q(id)) for the log-uniform sampler, Q(k) = log((k + 2) / (k + 1)) / log(V + 1)."""
    ids = ops.cast(ids, "float32")
    q = (ops.log(ids + 2.0) - ops.log(ids + 1.0)) / math.log(vocab_size + 1.0)
    return ops.log(q * float(num_sampled))


def sampled_softmax_loss(features, targets, output_embeddings, output_bias, num_sampled: int, seed=None):
    """Per-token sampled-softmax cross-entropy, with log-uniform candidates shared by the batch.

    Args:
        features: (..., units) LSTM outputs.
        targets: (...) int next-token ids.
        output_embeddings: (vocab, units) projection weights; logits = features @ output_embeddings.T + bias.
        output_bias: (vocab,).
        num_sampled: Candidates drawn (with replacement) for the whole batch.
        seed: An int or a `keras.random.SeedGenerator`.

    Returns:
        (...) losses, the shape of `targets`.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.model import sampled_softmax_loss
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(2, 3, 4)).astype("float32")
    >>> weights, bias = rng.normal(size=(50, 4)).astype("float32"), np.zeros(50, "float32")
    >>> tuple(sampled_softmax_loss(features, np.ones((2, 3), "int32"), weights, bias, 10, seed=0).shape)
    (2, 3)
    """
    vocab_size, units = output_embeddings.shape[0], output_embeddings.shape[1]
    shape = ops.shape(targets)
    features = ops.reshape(features, (-1, units))  # (n, units)
    targets = ops.cast(ops.reshape(targets, (-1,)), "int32")  # (n,)
    # Rank k has probability Q(k) under exp(u * log(V + 1)) - 1: the vocabulary is sorted by
    # frequency, so this is close to the words' own Zipfian frequencies.
    uniform = keras.random.uniform((num_sampled,), seed=seed)
    sampled = ops.cast(ops.floor(ops.exp(uniform * math.log(vocab_size + 1.0))) - 1.0, "int32")
    sampled = ops.clip(sampled, 0, vocab_size - 1)  # (num_sampled,)

    true_logits = ops.sum(features * ops.take(output_embeddings, targets, axis=0), axis=-1)
    true_logits += ops.take(output_bias, targets) - log_uniform_log_expected_count(targets, vocab_size, num_sampled)
    sampled_logits = ops.matmul(features, ops.transpose(ops.take(output_embeddings, sampled, axis=0)))
    sampled_logits += ops.take(output_bias, sampled) - log_uniform_log_expected_count(sampled, vocab_size, num_sampled)
    # A candidate equal to the target ("accidental hit") must not count as a negative.
    hits = ops.equal(targets[:, None], sampled[None, :])  # (n, num_sampled)
    sampled_logits = ops.where(hits, ops.full_like(sampled_logits, -1e9), sampled_logits)
    logits = ops.concatenate([true_logits[:, None], sampled_logits], axis=-1)  # (n, 1 + num_sampled)
    losses = ops.logsumexp(logits, axis=-1) - true_logits  # (n,)
    return ops.reshape(losses, shape)


@keras.saving.register_keras_serializable(package="nlp_lstm")
class NextWordModel(keras.Model):
    """Embedding -> LSTM (1-2 layers) -> projection to the vocabulary; `model(ids)` gives the features.

    Build it with `build_nextword_model`; the module docstring says why the projection is separate.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.config import NextWordModelConfig
    >>> from nlp_lstm.nextword.model import build_nextword_model
    >>> model = build_nextword_model(NextWordModelConfig(vocab_size=50, embedding_dim=8, units=8))
    >>> features, states = model.features(np.array([[2, 5, 7]]))
    >>> tuple(features.shape), tuple(model.logits(features).shape), tuple(states.shape)
    ((1, 3, 8), (1, 3, 50), (1, 2, 8))
    >>> logits, states = model.step(np.array([7]), model.initial_states(1))
    >>> tuple(logits.shape), tuple(states.shape)
    ((1, 50), (1, 2, 8))
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 256,
        units: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        tie_embeddings: bool = True,
        num_sampled: int = 1024,
        seed: int = 1337,
        carry_batch: int = 0,
        precision: str = "float32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.config = NextWordModelConfig(
            vocab_size, embedding_dim, units, num_layers, dropout, tie_embeddings, num_sampled, seed, carry_batch,
            precision,
        )  # fmt: skip
        low = precision  # the reading part; the projection and the loss compute in float32 (keras.ops promote)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding", dtype=low)
        self.lstm_layers = [
            LSTM(units, return_sequences=True, return_state=True, seed=seed + i, name=f"lstm_{i}", dtype=low)
            for i in range(num_layers)
        ]
        self.dropout = keras.layers.Dropout(dropout, seed=seed, name="dropout", dtype=low)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        config = self.config
        self.embedding.build((None, None))
        width = config.embedding_dim
        for lstm in self.lstm_layers:
            lstm.build((None, None, width))
            width = config.units
        if not config.tie_embeddings:
            self.output_kernel = self.add_weight(
                shape=(config.vocab_size, config.units), initializer="glorot_uniform", name="output_kernel"
            )  # (vocab, units): one row per word, like the embedding
        self.output_bias = self.add_weight(shape=(config.vocab_size,), initializer="zeros", name="output_bias")
        if config.carry_batch:
            self.carried_states = self.add_weight(
                shape=(config.carry_batch, config.state_width, config.units), initializer="zeros",
                trainable=False, name="carried_states",
            )  # fmt: skip
        self.built = True

    @property
    def output_embeddings(self):
        """(vocab, units): logits = features @ output_embeddings.T + output_bias."""
        return self.embedding.embeddings if self.config.tie_embeddings else self.output_kernel

    def initial_states(self, batch_size: int):
        """Zero states (batch_size, 2 * num_layers, units): the state before any token."""
        return ops.zeros((batch_size, self.config.state_width, self.config.units), dtype=self.compute_dtype)

    def features(self, ids, states=None, training: bool = False, mask=None):
        """Runs whole sequences; returns (features (batch, time, units), final states (batch, 2L, units)).

        `states` None starts from zeros; `mask` (batch, time) marks real tokens (masked steps keep the
        state, so a row's final state is the one after its last real token).
        """
        x = self.dropout(self.embedding(ids), training=training)  # (batch, time, embedding_dim)
        finals = []
        for i, lstm in enumerate(self.lstm_layers):
            initial = None if states is None else [states[:, 2 * i], states[:, 2 * i + 1]]
            x, h, c = lstm(x, initial_state=initial, training=training, mask=mask)  # x: (batch, time, units)
            x = self.dropout(x, training=training)
            finals += [h, c]
        # States in the model's dtype (float32) whatever the LSTMs compute in: they go back in, and out of exports.
        return x, ops.cast(ops.stack(finals, axis=1), self.compute_dtype)

    def call(self, ids, training: bool = False):
        if not (training and self.config.carry_batch):
            return self.features(ids, training=training)[0]
        rows = ids.shape[0]
        if rows is not None and rows != self.config.carry_batch:
            raise ValueError(
                f"this model carries the states of {self.config.carry_batch} rows from one training batch "
                f"to the next; got a batch of {rows}"
            )
        states = ops.cast(self.carried_states, self.compute_dtype)  # (batch, 2L, units)
        features, finals = self.features(ids, states, training=True)
        self.carried_states.assign(ops.cast(ops.stop_gradient(finals), self.carried_states.dtype))
        return features

    def logits(self, features):
        """(..., units) features -> (..., vocab) logits, the full projection."""
        # matmul with a transpose, not einsum("...u,vu->...v"): on TensorFlow's CPU kernels the ellipsis
        # einsum ran 4-6x slower on (16, 64, 256) features (1.5 s against 0.26 s; scripts/bench_nextword.py
        # spent most of its time there). The transpose folds into the matmul inside tf.function.
        features = ops.cast(features, "float32")  # bfloat16 under --precision mixed_bfloat16: project in float32
        return ops.matmul(features, ops.transpose(self.output_embeddings)) + self.output_bias

    def step(self, token_ids, states):
        """One token per sequence: (batch,) ids and (batch, 2L, units) states -> (logits (batch, vocab), states)."""
        x = self.embedding(token_ids)  # (batch, embedding_dim)
        new_states = []
        for i, lstm in enumerate(self.lstm_layers):
            x, (h, c) = lstm.cell(x, [states[:, 2 * i], states[:, 2 * i + 1]])  # (batch, units) each
            new_states += [h, c]
        return self.logits(x), ops.cast(ops.stack(new_states, axis=1), self.compute_dtype)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # y_pred: features (batch, time, units); y: next-token ids (batch, time).
        config = self.config
        if training and config.uses_sampled_softmax:
            losses = sampled_softmax_loss(
                ops.cast(y_pred, "float32"), y, self.output_embeddings, self.output_bias, config.num_sampled,
                self.seed_generator,
            )  # fmt: skip
        else:
            losses = keras.losses.sparse_categorical_crossentropy(y, self.logits(y_pred), from_logits=True)
        if sample_weight is not None:  # (batch, time): 0 for padding
            weights = ops.cast(sample_weight, losses.dtype)
            loss = ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)
        else:
            # Mean cross-entropy per token (exp(loss) is the perplexity); 0, not NaN, for the empty share
            # a replica gets of a batch smaller than the number of replicas.
            loss = ops.sum(losses) / ops.maximum(ops.sum(ops.ones_like(losses)), 1.0)
        for extra in self.losses:
            loss = loss + ops.sum(extra)
        # Under tf.distribute, Keras sums the replicas' gradients and scales the loss it reports back
        # up; its own losses divide by the number of replicas, so a compute_loss of our own must too.
        return scale_loss_for_distribution(loss)

    def get_config(self):
        config = super().get_config()
        config.update(asdict(self.config))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_nextword_model(config: NextWordModelConfig) -> NextWordModel:
    """A built (weights created), uncompiled next-word model.

    Example:

    >>> from nlp_lstm.nextword.config import NextWordModelConfig
    >>> from nlp_lstm.nextword.model import build_nextword_model
    >>> model = build_nextword_model(NextWordModelConfig(vocab_size=50, embedding_dim=8, units=8))
    >>> model.count_params()  # 50 * 8 embedding (also the projection) + 8 * 32 + 8 * 32 + 32 + 50 bias
    994
    """
    model = NextWordModel(**asdict(config), name="nextword")
    model.build((None, None))
    return model


@dataclass(frozen=True)
class NextWordFolder:
    """A loaded model folder: the model, its vocabulary, its configs and where it lives."""

    model: NextWordModel
    vocabulary: list[str] = field(repr=False)  # 20,000 words by default: not in the repr
    config: NextWordConfig
    corpus: CorpusConfig
    folder: Path
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)


def load_nextword_folder(model_dir: str = DEFAULT_MODEL_DIR) -> NextWordFolder:
    """Loads and checks a next-word model folder.

    Raises:
        ModelFolderError: The folder is missing, is another app's, lacks a file, or a file is damaged.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> from nlp_lstm.nextword.model import load_nextword_folder
    >>> loaded = load_nextword_folder(model_dir)
    >>> len(loaded.vocabulary) == loaded.model.config.vocab_size
    True
    """
    folder = Path(model_dir).expanduser()
    saved = read_model_config(folder, APP)
    require_files(folder, (MODEL_FILE, VOCABULARY_FILE), saved)
    check_vocabulary(folder, saved)
    try:
        config = NextWordConfig.from_dict(saved["nextword"])
        corpus = CorpusConfig(**saved["corpus"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFolderError(f"{folder / CONFIG_FILE} has no valid next-word config ({error})") from error
    try:
        vocabulary = load_vocabulary(folder / VOCABULARY_FILE)
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"cannot read {folder / VOCABULARY_FILE} ({error})") from error
    try:
        model = keras.models.load_model(folder / MODEL_FILE, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged file; all mean the same here
        raise ModelFolderError(
            f"cannot load {folder / MODEL_FILE} ({type(error).__name__}); the file is damaged: train again "
            f"({retrain_hint(folder, saved, APP)})"
        ) from error
    if not isinstance(model, NextWordModel):
        raise ModelFolderError(f"{folder / MODEL_FILE} is not a next-word model")
    if model.config.vocab_size != len(vocabulary):
        raise ModelFolderError(
            f"{folder / VOCABULARY_FILE} has {len(vocabulary)} tokens but the model has {model.config.vocab_size}: "
            f"the files come from different training runs"
        )
    if BOUNDARY_TOKEN not in vocabulary:
        raise ModelFolderError(f"{folder / VOCABULARY_FILE} lacks the boundary token {BOUNDARY_TOKEN}")
    metrics: dict[str, Any] = {}
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass  # a folder whose training was cut short has no metrics yet; the model still works
    return NextWordFolder(model, vocabulary, config, corpus, folder, metrics)
