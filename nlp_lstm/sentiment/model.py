"""The sentiment app: a bidirectional LSTM that reads a movie review and says neg (0) or pos (1).

    text --(text.make_classification_dataset, in tf.data)--> token ids (batch, time), 0-padded
         --Embedding(mask_zero=True)--> (batch, time, embedding_dim)
         --Bidirectional(nlp_lstm.layers.LSTM)--> (batch, time, 2 * units), zeros where masked
         --masked max and mean over time, concatenated--> (batch, 4 * units)
         --Dropout, Dense(1, sigmoid)--> P(pos) (batch, 1)

With `SentimentConfig.ngram_buckets` > 0 (the default) a second member follows the BiLSTM: NBSVM's
logistic regression on the review's words and hashed word pairs (`nlp_lstm.sentiment.ngrams`, layers named
"ngram_*"), fitted once on the training split before the BiLSTM trains, then fixed. The model outputs
both probabilities (batch, 2) and P(pos) is their mean (`positive_probability`). It reads the same
token ids, so the pipeline, the vocabulary and the export are unchanged.

A model folder (default saved_models/sentiment/) holds model.keras, vocabulary.txt, config.json
("app": "sentiment", the SentimentConfig and DataConfig it was trained with), metrics.json and
what `nlp_lstm.training.fit` writes (history.csv, curves.png, logs/). The vocabulary is adapted
once, on the training split, and every later step (evaluate, predict, export) reads it back.

With `SentimentConfig.encoder` (a next-word model folder) the BiLSTM is replaced by the next-word model's
reader, fine-tuned (`build_finetuned_model`, `nlp_lstm.sentiment.finetune`):

    token ids --[BOS] prepended, as the language model read each review--> (batch, 1 + time)
         --Embedding (the language model's)--> --LSTM x layers (the language model's, forward)-->
         --the last state, masked max and mean over time, concatenated (ULMFiT's concat pooling)-->
         --Dropout, Dense(1, sigmoid)--> P(pos)

Labels everywhere: 0 = neg, 1 = pos (`nlp_lstm.data.LABEL_NAMES`). P(pos) >= 0.5 is pos.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import layers, ops

from nlp_lstm.layers import LSTM
from nlp_lstm.sentiment.config import SentimentConfig
from nlp_lstm.sentiment.ngrams import ngram_probability
from nlp_lstm.text import (
    OOV_ID,
)


@keras.saving.register_keras_serializable(package="nlp_lstm")
class MaskedGlobalMaxPooling1D(layers.Layer):
    """Max over the unmasked time steps (keras.layers.GlobalMaxPooling1D ignores the mask).

    A sequence with every step masked pools to zeros.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment.model import MaskedGlobalMaxPooling1D
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


@keras.saving.register_keras_serializable(package="nlp_lstm")
class PrependToken(layers.Layer):
    """Token ids (batch, time) -> (batch, 1 + time) with `token_id` first in every row.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment.model import PrependToken
    >>> PrependToken(2)(np.array([[5, 7, 0]])).numpy().tolist()
    [[2, 5, 7, 0]]
    """

    def __init__(self, token_id: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.token_id = int(token_id)

    def call(self, ids: Any) -> Any:
        first = ops.full((ops.shape(ids)[0], 1), self.token_id, dtype=ids.dtype)
        return ops.concatenate([first, ids], axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        time = input_shape[1]
        return (input_shape[0], None if time is None else time + 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "token_id": self.token_id}


def _with_ngram_member(config: SentimentConfig, token_ids: Any, probability: Any, rows: int, name: str) -> keras.Model:
    """The model from the LSTM member's P(pos), with the n-gram member beside it when configured."""
    if config.ngram_buckets:
        ngram = ngram_probability(token_ids, rows, config.ngram_buckets)  # (batch, 1)
        probability = layers.Concatenate(name="members")([probability, ngram])  # (batch, 2)
    return keras.Model(token_ids, probability, name=name)


def build_sentiment_model(config: SentimentConfig, vocabulary_size: int | None = None) -> keras.Model:
    """The uncompiled classifier: token ids (batch, time) int64 -> P(pos) per member (batch, members).

    The members are the BiLSTM classifier, then the n-gram member when `config.ngram_buckets` > 0.

    Args:
        config: Sizes and dropout.
        vocabulary_size: Rows of the embedding; default `config.max_tokens` (a small corpus can give fewer).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment.config import SentimentConfig
    >>> from nlp_lstm.sentiment.model import build_sentiment_model
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
    return _with_ngram_member(config, token_ids, probability, rows, "sentiment_bilstm")


def encoder_lstm_name(layer: int) -> str:
    """The name of the fine-tuned classifier's `layer`-th LSTM (0 reads the word vectors)."""
    return f"encoder_lstm_{layer}"


def encoder_lstm_names(model: keras.Model) -> list[str]:
    """The fine-tuned classifier's LSTMs, bottom up (none in the BiLSTM model)."""
    names = {layer.name for layer in model.layers}
    found: list[str] = []
    while encoder_lstm_name(len(found)) in names:
        found.append(encoder_lstm_name(len(found)))
    return found


def build_finetuned_model(
    config: SentimentConfig, vocabulary_size: int, num_layers: int, boundary_id: int
) -> keras.Model:
    """The uncompiled classifier on a next-word model's reader (random weights until
    `nlp_lstm.sentiment.finetune.copy_encoder` copies the language model's in).

    Args:
        config: Its `embedding_dim` and `units` are the language model's; dropout and the n-gram member.
        vocabulary_size: Rows of the embedding: the language model's vocabulary.
        num_layers: The language model's LSTM layers.
        boundary_id: The id of '[BOS]', which the language model read before every review.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.sentiment.config import SentimentConfig
    >>> from nlp_lstm.sentiment.model import build_finetuned_model
    >>> config = SentimentConfig(max_tokens=50, embedding_dim=8, units=8, ngram_buckets=64, encoder="lm")
    >>> model = build_finetuned_model(config, 50, num_layers=1, boundary_id=2)
    >>> tuple(model(np.array([[5, 7, 0, 0], [3, 0, 0, 0]])).shape)
    (2, 2)
    """
    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")  # (batch, time)
    ids = PrependToken(boundary_id, name="prepend_boundary")(token_ids)  # (batch, 1 + time)
    x = layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name="embedding")(ids)
    x = layers.Dropout(config.embedding_dropout, seed=config.seed, name="embedding_dropout")(x)
    last = None
    for layer in range(num_layers):  # (batch, 1 + time, units); last: the state after each row's last token
        x, last, _ = LSTM(config.units, return_sequences=True, return_state=True, name=encoder_lstm_name(layer))(x)
    max_pooled = MaskedGlobalMaxPooling1D(name="max_pool")(x)
    mean_pooled = layers.GlobalAveragePooling1D(name="mean_pool")(x)
    pooled = layers.Concatenate(name="pooled")([last, max_pooled, mean_pooled])  # (batch, 3 * units): concat pooling
    pooled = layers.Dropout(config.head_dropout, seed=config.seed + 1, name="head_dropout")(pooled)
    probability = layers.Dense(1, activation="sigmoid", name="probability")(pooled)  # (batch, 1)
    return _with_ngram_member(config, token_ids, probability, vocabulary_size, "sentiment_finetuned")


def lstm_member_logit(model: keras.Model, vectors: Any, mask: Any) -> Any:
    """The LSTM member's logit (batch,) from the word vectors of a review's tokens (batch, time, dim) and its
    mask (batch, time), not training: the model's own layers, from the word vectors on (for `explain`).

    Either model: the BiLSTM's, or the fine-tuned reader's (which prepends the '[BOS]' vector itself).
    """
    lstms = encoder_lstm_names(model)
    if not lstms:
        hidden = model.get_layer("bilstm")(vectors, mask=mask)  # (batch, time, 2 * units)
        features = []
    else:
        batch = ops.shape(vectors)[0]
        boundary = ops.full((batch, 1), model.get_layer("prepend_boundary").token_id, dtype="int64")
        start = ops.cast(model.get_layer("embedding")(boundary), vectors.dtype)  # (batch, 1, dim)
        hidden = ops.concatenate([start, vectors], axis=1)
        mask = ops.concatenate([ops.ones((batch, 1), dtype="bool"), ops.cast(mask, "bool")], axis=1)
        for name in lstms:
            hidden, last, _ = model.get_layer(name)(hidden, mask=mask)
        features = [last]
    features += [model.get_layer("max_pool")(hidden, mask=mask), model.get_layer("mean_pool")(hidden, mask=mask)]
    dense = model.get_layer("probability")
    return (ops.matmul(ops.concatenate(features, axis=-1), dense.kernel) + dense.bias)[:, 0]


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


def compile_sentiment_model(
    model: keras.Model,
    config: SentimentConfig,
    steps_per_epoch: int = 1,
    adam: type = keras.optimizers.Adam,
    **adam_options: Any,
) -> keras.Model:
    """Compiles with Adam (clipped), binary cross-entropy and an "accuracy" metric; returns the model.

    `adam` and `adam_options`: another Adam class and its own arguments (the fine-tuned model's
    `nlp_lstm.sentiment.finetune.LayerwiseAdam`).

    With `config.learning_rate_decay` "cosine" the rate follows `keras.optimizers.schedules.CosineDecay`
    over `config.epochs * steps_per_epoch` steps, then stays at 0.

    The loss is each member's cross-entropy, averaged: a member's gradient is the one it would get
    if trained alone. "accuracy" is the accuracy of the members' mean, the model's verdict.
    """
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.learning_rate_decay == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch)
    model.compile(
        optimizer=adam(learning_rate, clipnorm=config.clipnorm, **adam_options),
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
    >>> from nlp_lstm.sentiment.model import vectorize_texts
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
