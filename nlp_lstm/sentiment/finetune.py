"""The sentiment classifier fine-tuned from the next-word model (`train sentiment --encoder DIR`).

ULMFiT's recipe (Howard & Ruder 2018) on the next-word app's language model:

    copy_encoder         the language model's word vectors and LSTM(s) into the classifier
                         (`nlp_lstm.sentiment.model.build_finetuned_model`), same ids: the classifier reads
                         with the language model's vocabulary, copied into its own folder
    unfreezing_groups    the layers, top down: the head, each LSTM from the last, the word vectors
    GradualUnfreezing    epoch 1 trains the head alone, each next epoch one group more, then all
    LayerwiseAdam        each group's learning rate the one above's / 2.6 (discriminative rates), and
                         Adam's bias correction counted from each group's unfreezing
    encoder_identity     what config.json records of the language model: its folder and the hashes of
                         its model and vocabulary, so that a resume from another one is refused

A frozen group computes no gradient, so the first epochs cost less than the last.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
from keras import ops

from nlp_lstm.nextword.model import NextWordFolder
from nlp_lstm.run_folder import MODEL_FILE, VOCABULARY_FILE, file_sha256, vocabulary_sha256
from nlp_lstm.sentiment.model import encoder_lstm_name, encoder_lstm_names

# ULMFiT's ratio of one layer group's learning rate to the next one's above it.
LAYER_RATE_RATIO = 2.6
HEAD = ("probability",)  # the layers trained from the first epoch (the n-gram member is fitted, never trained)


def encoder_identity(folder: str | os.PathLike) -> dict[str, str]:
    """What a fine-tuned folder's config.json records of the next-word folder it started from.

    Example (``model_dir``: a next-word folder a tiny training wrote):

    >>> from nlp_lstm.sentiment.finetune import encoder_identity
    >>> sorted(encoder_identity(model_dir))
    ['folder', 'model_sha256', 'vocabulary_sha256']
    """
    folder = Path(folder).expanduser().absolute()
    return {
        "folder": str(folder),
        "model_sha256": file_sha256(folder / MODEL_FILE),
        "vocabulary_sha256": vocabulary_sha256(folder / VOCABULARY_FILE),
    }


def copy_encoder(model: keras.Model, encoder: NextWordFolder) -> None:
    """Copies the language model's word vectors and LSTM weights into the classifier, layer by layer.

    Raises:
        ValueError: The classifier was built for other sizes than the language model's.
    """
    language_model = encoder.model
    pairs = [(model.get_layer("embedding"), language_model.embedding)]
    pairs += [(model.get_layer(encoder_lstm_name(i)), lstm) for i, lstm in enumerate(language_model.lstm_layers)]
    for target, source in pairs:
        weights = source.get_weights()
        shapes = [tuple(w.shape) for w in target.get_weights()], [tuple(w.shape) for w in weights]
        if shapes[0] != shapes[1]:
            raise ValueError(f"layer {target.name} has weights of shapes {shapes[0]}, the language model's {shapes[1]}")
        target.set_weights(weights)


def unfreezing_groups(model: keras.Model) -> list[tuple[str, ...]]:
    """The fine-tuned classifier's layer groups, top down: head, last LSTM ... first LSTM, word vectors.

    Example:

    >>> from nlp_lstm.sentiment.config import SentimentConfig
    >>> from nlp_lstm.sentiment.model import build_finetuned_model
    >>> model = build_finetuned_model(SentimentConfig(max_tokens=50, embedding_dim=8, units=8), 50, 2, 2)
    >>> unfreezing_groups(model)
    [('probability',), ('encoder_lstm_1',), ('encoder_lstm_0',), ('embedding',)]
    """
    return [HEAD, *[(name,) for name in reversed(encoder_lstm_names(model))], ("embedding",)]


def layer_rates(groups: list[tuple[str, ...]], ratio: float = LAYER_RATE_RATIO) -> dict[str, float]:
    """Each layer's learning rate as a fraction of the head's: 1, 1 / ratio, 1 / ratio**2, ... down the groups.

    Example:

    >>> layer_rates([("probability",), ("encoder_lstm_0",), ("embedding",)], ratio=2.0)
    {'probability': 1.0, 'encoder_lstm_0': 0.5, 'embedding': 0.25}
    """
    return {name: ratio**-depth for depth, group in enumerate(groups) for name in group}


def _layer_of(variable: Any) -> str:
    """The name of the layer that owns a Keras variable: the first part of its path."""
    return variable.path.split("/")[0]


@keras.saving.register_keras_serializable(package="nlp_lstm")
class LayerwiseAdam(keras.optimizers.Adam):
    """Adam whose learning rate for a variable is scaled by its layer's factor (1 for layers not named),
    and whose bias correction counts each variable's own steps, from the last `restart`.

    Keras' Adam corrects its moments by the optimizer's step count, which is right only for a variable
    trained from step 1. A layer unfrozen after s steps starts from zero moments, and corrected by
    s + k its k-th step would be too large by sqrt((1 - 0.999**(s+k)) / (1 - 0.999**k)) * (1 - 0.9**k)
    / (1 - 0.9**(s+k)): after one epoch of IMDB (s = 352), 3.6 times at k = 10, 2.0 at k = 100 and
    1.3 at the end of its first epoch. `GradualUnfreezing` restarts each group's count when it
    unfreezes it, so its first step is Adam's first step: the rate times the sign of the gradient.

    Args:
        layer_factors: Layer name (the first part of a variable's path) -> factor.
        **kwargs: Adam's (not amsgrad).
    """

    def __init__(self, *args: Any, layer_factors: dict[str, float] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("LayerwiseAdam does not take amsgrad")
        self.layer_factors = dict(layer_factors or {})

    def build(self, variables: list) -> None:
        if self.built:
            return
        super().build(variables)
        # The optimizer step before each variable's first: its own step k is iterations + 1 - this.
        self._steps_before = [self.add_variable((), dtype="int64", name="steps_before") for _ in variables]

    def restart(self, layers: list[str]) -> None:
        """From the next step, the variables of `layers` count their steps from 1 (their moments are 0)."""
        for index, variable in enumerate(self._trainable_variables):
            if _layer_of(variable) in layers:
                self._steps_before[index].assign(self.iterations)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        # The TensorFlow backend hands over the tf.Variable: its Keras variable, by index, has the path.
        index = self._get_variable_index(variable)
        factor = self.layer_factors.get(_layer_of(self._trainable_variables[index]), 1.0)
        rate = ops.cast(learning_rate, variable.dtype) * factor
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1 - self._steps_before[index], variable.dtype)  # this variable's k
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))  # mean of the gradient
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))  # mean of its square
        corrected = rate * ops.sqrt(1 - ops.power(self.beta_2, step)) / (1 - ops.power(self.beta_1, step))
        self.assign_sub(variable, m * corrected / (ops.sqrt(v) + self.epsilon))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer_factors": self.layer_factors}


class GradualUnfreezing(keras.callbacks.Callback):
    """Epoch e (from 0) trains the first e + 1 groups of `groups` (all from the last group's epoch on).

    The optimizer is built on every trainable variable before the first freeze, so a group unfrozen
    later has its slots; the training function is traced again whenever the trainable set changes.
    The stage follows the epoch number, so a resumed run freezes as the interrupted one did.
    """

    def __init__(self, groups: list[tuple[str, ...]], log: Any = None):
        super().__init__()
        self.groups = groups
        self.log = log
        self.stage: int | None = None

    def trained_layers(self, epoch: int) -> list[str]:
        """The layers epoch `epoch` (from 0) trains."""
        return [name for group in self.groups[: epoch + 1] for name in group]

    def on_train_begin(self, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        if not optimizer.built:
            for name in self.trained_layers(len(self.groups)):
                self.model.get_layer(name).trainable = True
            optimizer.build(self.model.trainable_variables)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        stage = min(epoch, len(self.groups) - 1)
        if stage == self.stage:
            return
        trained = set(self.trained_layers(stage))
        for group in self.groups:
            for name in group:
                self.model.get_layer(name).trainable = name in trained
        # The groups this epoch trains for the first time (all from the previous epoch's on, on a resume).
        before = self.stage if self.stage is not None else min(epoch, len(self.groups)) - 1
        new = [name for group in self.groups[before + 1 : stage + 1] for name in group]
        if new and isinstance(self.model.optimizer, LayerwiseAdam):
            self.model.optimizer.restart(new)
        self.model.make_train_function(force=True)
        self.stage = stage
        if self.log:
            self.log(f"epoch {epoch + 1}: training {', '.join(n for n in self.trained_layers(stage))}")

    def on_train_end(self, logs: dict | None = None) -> None:
        for name in self.trained_layers(len(self.groups)):  # the saved model is a whole, trainable one
            self.model.get_layer(name).trainable = True
        self.stage = None
