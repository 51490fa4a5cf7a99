"""`nlp_lstm.layers.LSTM`: `keras.layers.RNN` around our `LSTMCell`, with a leaner inner loop.

Where the time goes in a plain `RNN(LSTMCell)` on a CPU (profiled on 2 cores, batch 64, units 64):
each TensorFlow op costs microseconds to dispatch however small its tensor, so the number of ops per
step, not the arithmetic, sets the pace. So the input projection `x @ kernel + bias` runs once for the
whole sequence, one large matrix product, before the loop; each step then does only
`h @ recurrent_kernel` and the gates (27 graph nodes per step against 33 for keras.layers.LSTM).

The backward pass is autodiff of this loop, with one exception: the recurrent product's gradient
reads a transposed copy of the kernel (`_recurrent_product`), because TensorFlow's CPU MatMul with a
transposed operand, which autodiff would use at every step, runs up to 3x slower. A hand-written
backward pass through time (d(recurrent_kernel) as one product over all steps) was tried twice and
not kept: 0.85x against 1.00-1.12x the built-in's training speed; then in a transposed layout, 1.05x at
256 units without XLA (this loop now reads 1.26-1.34x there) and 0.97x against 1.30x at 64 units
under XLA.

On a CPU, inference from 128 units up runs that cell-by-cell loop instead (see INFERENCE_HOIST_BELOW).

Outputs, states and masking semantics are those of `keras.layers.RNN(LSTMCell(...))`; the tests
check them, and their gradients, against `keras.layers.LSTM` with the same weights. Activations other
than tanh/sigmoid, and `unroll=True`, fall back to the cell-by-cell loop of `keras.layers.RNN`.
"""

from __future__ import annotations

import keras
from keras import ops

# The backend's time loop, the one `keras.layers.RNN.inner_loop` runs: states stay loop variables
# rather than round-tripping through a stack each step as `keras.ops.scan` does on TensorFlow.
from keras.src import backend

from nlp_lstm.cell import LSTMCell

# On a CPU, inference at this width and above runs the cell-by-cell loop (x_t @ kernel inside each
# step). Measured with scripts/bench_cell.py (2 cores, batch 64, 200 steps) before the switch: at 128
# and 256 units the hoisted projection writes a (batch, time, 4 * units) tensor of 26-52 MB that the
# steps read back, and inference ran at 0.71-0.84x keras.layers.LSTM against 0.89-1.04x for the
# cell loop; at 64 units hoisting wins (1.15-1.69x against 0.95-1.26x). Training keeps the hoisted
# loop at every width (1.13-1.43x at 256 units under XLA, the apps' default, against 0.99-1.03x).
# The reason is the CPU's caches, so the switch is CPU-only: on an H100 under JAX and XLA, at 128 and
# 256 units, the hoisted loop inferred at 1.44-1.88x keras.layers.LSTM (cuDNN) against 1.16-1.49x for
# the cell loop, timed in turn in one run. TensorFlow on a GPU was not measured (no build there).
INFERENCE_HOIST_BELOW = 128


def _on_accelerator() -> bool:
    """Whether Keras sees a GPU or TPU, where TensorFlow and JAX place new tensors by default (torch:
    Keras's default device). Read when the loop is traced; an explicit `tf.device` scope is not seen."""
    if keras.backend.backend() == "torch":  # keras.distribution has no torch implementation
        from keras.src.backend.torch.core import get_device

        return not str(get_device()).startswith("cpu")
    return any(not device.lower().startswith("cpu") for device in keras.distribution.list_devices())


_CELL_ARGS = (
    "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "seed",
)  # fmt: skip


def _recurrent_product(recurrent_kernel, training: bool):
    """`h @ recurrent_kernel` as a function of h, for the time loop; in training, with a backward pass
    that reads a transposed copy of the kernel made once per batch.

    Autodiff of `h @ R` gives d(h) = d(z) @ R^T, a MatMul with transpose_b, once per step. On
    TensorFlow's CPU kernels (2 cores, batch 64) that product took 2.9 ms at 256 units against
    0.95 ms for the same product on an untransposed copy, and it is on the backward pass's critical
    path; keras.layers.LSTM pays it too. Other backends keep plain autodiff, and so does inference:
    a SavedModel's traced custom gradient refers to a tensor inside the loop and cannot be replayed.
    """
    if keras.backend.backend() != "tensorflow" or not training:
        return lambda h: ops.matmul(h, recurrent_kernel)
    recurrent_kernel_t = ops.transpose(recurrent_kernel)  # (4 * units, units)

    @ops.custom_gradient
    def product(h, kernel):
        def grad(*args, upstream=None):
            d_z = upstream if upstream is not None else args[0]  # (batch, 4 * units)
            return ops.matmul(d_z, recurrent_kernel_t), ops.matmul(ops.transpose(h), d_z)

        return ops.matmul(h, kernel), grad

    return lambda h: product(h, recurrent_kernel)


def _lstm_step(z_t, h, c, recurrent_product, rec_mask):
    """One step from pre-projected inputs z_t (batch, 4 * units); returns (h, c)."""
    h_in = h * rec_mask if rec_mask is not None else h
    z = z_t + recurrent_product(h_in)  # (batch, 4 * units)
    z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
    c_new = ops.sigmoid(z_f) * c + ops.sigmoid(z_i) * ops.tanh(z_c)
    h_new = ops.sigmoid(z_o) * ops.tanh(c_new)
    return h_new, c_new


def _lstm_forward(zx, h0, c0, recurrent_kernel, mask, rec_mask, return_sequences=True, training=False):
    """The time loop over pre-projected inputs; autodiff gives its backward pass, except the recurrent
    product's in training (see `_recurrent_product`).

    Args: zx (batch, time, 4 * units) pre-projected inputs; h0, c0 (batch, units) initial states;
    mask (batch, time) bool or None; rec_mask (batch, units) recurrent dropout mask or None.
    Returns the outputs (batch, time, units), as keras.layers.RNN gives them (a masked step
    repeats the last output, zeros before any), or only the last (batch, 1, units); and h, c.
    """

    recurrent_product = _recurrent_product(recurrent_kernel, training)

    def step(z_t, states):
        h, c = _lstm_step(z_t, states[0], states[1], recurrent_product, rec_mask)
        return h, [h, c]

    _, hs, (h, c) = backend.rnn(step, zx, [h0, c0], mask=mask, return_all_outputs=return_sequences)
    return hs, h, c


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
        **kwargs,
    ):
        kwargs.pop("use_cudnn", None)  # accepted for drop-in use; we have one implementation
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

    def _fast_path_applies(self) -> bool:
        cell = self.cell
        return (
            not self.unroll
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell_loop_infers = not training and self.units >= INFERENCE_HOIST_BELOW and not _on_accelerator()
        if not self._fast_path_applies() or cell_loop_infers:
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

        zx = ops.matmul(x, cell.kernel)  # (batch, time, 4 * units), one product for all steps
        if cell.use_bias:
            zx = zx + cell.bias
        if mask is not None:
            mask = ops.cast(mask, "bool")  # (batch, time)
        if self.go_backwards:
            zx = ops.flip(zx, axis=1)
            mask = ops.flip(mask, axis=1) if mask is not None else None
        # A tensor, not the variable: the custom gradient returns d(recurrent_kernel) as an input's.
        recurrent_kernel = ops.cast(cell.recurrent_kernel, zx.dtype)  # (units, 4 * units)
        hs, h, c = _lstm_forward(
            zx,
            h0,
            c0,
            recurrent_kernel,
            mask,
            rec_mask,
            return_sequences=self.return_sequences,
            training=training,
        )
        if mask is not None and self.zero_output_for_mask:
            hs = ops.where(mask[..., None], hs, ops.zeros_like(hs))
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
