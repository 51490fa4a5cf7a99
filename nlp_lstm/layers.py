"""`nlp_lstm.layers.LSTM`: `keras.layers.RNN` around our `LSTMCell`, with a leaner time loop.

Where the time goes in a plain `RNN(LSTMCell)` on a CPU (profiled on 2 cores, batch 64, units 64):
each TensorFlow op costs microseconds to dispatch however small its tensor, so the number of ops per
step, not the arithmetic, sets the pace. So the layer runs its own loop (`nlp_lstm.loops`): the gate
equations with tanh and sigmoid written in, and the input projection `x @ kernel + bias` either hoisted
out of the loop as one large product or kept in each step, whichever `nlp_lstm.loops.choose` measured
faster for this shape on this machine (27 graph nodes per step against 33 for keras.layers.LSTM when
hoisted).

The backward pass is autodiff of the loop, with one exception: the products' gradients read transposed
copies of the kernels (`nlp_lstm.loops._product`), because TensorFlow's CPU MatMul with a transposed
operand, which autodiff would use at every step, runs up to 3x slower. A hand-written backward pass
through time (d(recurrent_kernel) as one product over all steps) was tried twice and not kept
(docs/experiments.md).

Outputs, states and masking semantics are those of `keras.layers.RNN(LSTMCell(...))`; the tests
check them, and their gradients, against `keras.layers.LSTM` with the same weights, for each loop.
Activations other than tanh/sigmoid, and `unroll=True`, fall back to the cell-by-cell loop of
`keras.layers.RNN`.
"""

from __future__ import annotations

import keras
from keras import ops

from nlp_lstm import loops
from nlp_lstm.cell import LSTMCell

_CELL_ARGS = (
    "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "seed",
)  # fmt: skip


@keras.saving.register_keras_serializable(package="nlp_lstm")
class LSTM(keras.layers.RNN):
    """Long short-term memory layer: `keras.layers.LSTM`'s interface over `nlp_lstm.cell.LSTMCell`.

    Args:
        units: Size of the hidden and cell states.
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias,
        *_regularizer, *_constraint, dropout, recurrent_dropout, seed: as for `LSTMCell`.
        return_sequences: Return the output of every step, (batch, time, units), not only the last.
        return_state: Also return the final states `h` and `c`.
        go_backwards: Read the sequence from its end.
        stateful: Carry the final states of a batch into the next batch.
        unroll: Unroll the time loop (uses the plain cell-by-cell loop).
        use_cudnn: "auto", True or False, checked and kept as `keras.layers.LSTM` keeps it (so
            `keras.layers.Bidirectional` can copy it, and code that reads `layer.use_cudnn` runs), and
            not saved, as there. This layer never runs cuDNN, whatever its value.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.layers import LSTM
    >>> lstm = LSTM(4, return_sequences=True)
    >>> tuple(lstm(np.ones((2, 3, 5), "float32")).shape)
    (2, 3, 4)
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
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        use_cudnn="auto",
        **kwargs,
    ):
        if use_cudnn not in ("auto", True, False):  # keras.layers.LSTM's check
            raise ValueError(f"use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
        kwargs.pop("implementation", None)
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.use_cudnn = use_cudnn

    def _fast_path_applies(self) -> bool:
        cell = self.cell
        return (
            not self.unroll
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fast_path_applies():
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        cell = self.cell
        # Copies: a stateful layer's states are variables, which it overwrites with the final states
        # before an eager backward pass would read them.
        h0, c0 = ops.copy(initial_state[0]), ops.copy(initial_state[1])
        x = sequences  # (batch, time, input_dim)
        if training and cell.dropout > 0.0:
            # One mask per sequence, drawn by RNN.call before the loop; (batch, 1, input_dim).
            x = x * ops.expand_dims(cell.get_dropout_mask(x[:, 0, :]), 1)
        rec_mask = None
        if training and cell.recurrent_dropout > 0.0:
            rec_mask = cell.get_recurrent_dropout_mask(h0)  # (batch, units)
        if mask is not None:
            mask = ops.cast(mask, "bool")  # (batch, time)
        if self.go_backwards:
            x = ops.flip(x, axis=1)
            mask = ops.flip(mask, axis=1) if mask is not None else None
        batch, steps, input_dim = x.shape
        loop = loops.choose(
            self.units, input_dim, steps, batch, x.dtype, training,
            return_sequences=self.return_sequences, masked=mask is not None,
        )  # fmt: skip
        # Tensors, not the variables: the custom gradients return the kernels' as inputs'.
        hs, h, c = loops.run(
            loop,
            x,
            h0,
            c0,
            ops.cast(cell.kernel, x.dtype),  # (input_dim, 4 * units)
            ops.cast(cell.recurrent_kernel, x.dtype),  # (units, 4 * units)
            ops.cast(cell.bias, x.dtype) if cell.use_bias else None,  # (4 * units,)
            mask,
            rec_mask,
            return_sequences=self.return_sequences,
            training=training,
            zero_output_for_mask=self.zero_output_for_mask,
        )
        return hs[:, -1], hs, [h, c]

    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def dropout(self) -> float:
        return self.cell.dropout

    @property
    def recurrent_dropout(self) -> float:
        return self.cell.recurrent_dropout

    def get_config(self):
        config = super().get_config()
        cell_config = self.cell.get_config()
        del config["cell"]
        config.update({name: cell_config[name] for name in _CELL_ARGS})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
