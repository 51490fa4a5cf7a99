"""The LSTM cell, written from the gate equations.

One step of a long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of
Gers et al. 2000):

    z = x @ kernel + h_prev @ recurrent_kernel + bias        # (batch, 4 * units), gates (i, f, c, o)
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o)
    g = tanh(z_c)
    c = f * c_prev + i * g
    h = o * tanh(c)

`keras.layers.RNN` runs it over time. Weight names, shapes and gate order are those of
`keras.layers.LSTMCell`, so `set_weights` moves weights both ways between the two.
"""

from __future__ import annotations

import keras
from keras import ops

# keras.layers.RNN pre-draws dropout masks once per sequence, before its time loop, for cells that
# carry this mixin (an isinstance check in RNN.call): a cell without it would draw a fresh mask at
# every step inside the loop. It is the RNN's contract with its cells, so we honour it rather than
# copy it.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell


def _check_rate(name: str, value: float) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return rate


@keras.saving.register_keras_serializable(package="nlp_lstm")
class LSTMCell(keras.layers.Layer, DropoutRNNCell):
    """One LSTM step, for `keras.layers.RNN`.

    Args:
        units: Size of the hidden and cell states (> 0).
        activation: Activation of the candidate and of the output (default tanh).
        recurrent_activation: Activation of the input, forget and output gates (default sigmoid).
        use_bias: Whether the gates have a bias.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers of the weights.
        unit_forget_bias: Start the forget gate's bias at 1 (Jozefowicz et al. 2015).
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Regularizers of the weights.
        kernel_constraint, recurrent_constraint, bias_constraint: Constraints on the weights.
        dropout: Fraction of the inputs dropped while training, in [0, 1).
        recurrent_dropout: Fraction of the previous hidden state dropped while training, in [0, 1).
        seed: Seed of the dropout masks.

    Example:

    >>> import numpy as np, keras
    >>> from nlp_lstm.cell import LSTMCell
    >>> layer = keras.layers.RNN(LSTMCell(4), return_sequences=True, return_state=True)
    >>> outputs, h, c = layer(np.ones((2, 3, 5), "float32"))
    >>> tuple(outputs.shape), tuple(h.shape), tuple(c.shape)
    ((2, 3, 4), (2, 4), (2, 4))
    """

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        # keras.layers.LSTMCell's `implementation` switch chooses between two equivalent layouts
        # of the same product; we always compute the fused one. Accept it so configs load.
        kwargs.pop("implementation", None)
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        self.units = units
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _check_rate("dropout", dropout)
        self.recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, 4 * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            initializer = self._forget_bias_initializer if self.unit_forget_bias else self.bias_initializer
            self.bias = self.add_weight(
                shape=(4 * self.units,),
                name="bias",
                initializer=initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def _forget_bias_initializer(self, shape, dtype=None):
        # (4 * units,): gates i, f, c, o; the forget gate starts at one, the others as bias_initializer.
        units, base = self.units, self.bias_initializer
        return ops.concatenate(
            [base((units,), dtype=dtype), ops.ones((units,), dtype=dtype), base((2 * units,), dtype=dtype)]
        )

    def gates_to_state(self, z, c_prev):
        """Applies the gate activations to pre-activations `z` (batch, 4 * units); returns (h, c)."""
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self.activation(z_c)
        o = self.recurrent_activation(z_o)
        c = f * c_prev + i * g
        h = o * self.activation(c)
        return h, c

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states[0], states[1]  # (batch, units) each
        if training and self.dropout > 0.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0.0:
            h_prev = h_prev * self.get_recurrent_dropout_mask(h_prev)
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel)
        if self.use_bias:
            z = z + self.bias  # (batch, 4 * units)
        h, c = self.gates_to_state(z, c_prev)
        return h, [h, c]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in self.state_size]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed,
            }
        )
        return config
