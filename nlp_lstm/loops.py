"""The time loop of `nlp_lstm.layers.LSTM`, in two variants, and the choice between them, measured where it runs.

The variants compute the same equations (`nlp_lstm.cell`) and agree to float rounding; the tests check
each, forced, against `keras.layers.LSTM`:

    "hoisted"  `x @ kernel + bias` for every step as one product before the loop; a step then does
               `h @ recurrent_kernel` and the gates. Fewer ops per step, but the product runs before the
               loop, where in the cell loop it overlaps with the steps' chain of dependent ops.
    "cell"     a step does `x_t @ kernel + h @ recurrent_kernel + bias` and the gates, as
               `keras.layers.LSTM` does on a CPU.

Which is faster depends on the CPU (its caches, AVX2 or AVX-512 with AMX, TensorFlow's oneDNN kernels on or
off), the shape, training or inference, and XLA: no constant holds on every machine (docs/benchmarks.md).
So the layer measures. When a `tf.function` (Keras's train, predict or serving function, XLA or not) first
traces the layer for a key, `choose` times both variants on random tensors of the key's shape (in a
thread of its own, eagerly), compiled as the trace is compiled, forward only in inference and forward and
backward in training (as the layer's `training` flag says), and keeps the hoisted loop where it is faster
by HOISTED_MARGIN, else the cell loop (which ties with keras.layers.LSTM).

- Key: units, input width, steps, batch, dtype, training, XLA, return_sequences, masked, device kind.
  A dimension unknown when tracing is probed at PROBE_BATCH rows or PROBE_STEPS steps.
- Cache: in memory for the process, and in a JSON file, `$NLP_LSTM_CACHE` or
  `~/.cache/nlp_lstm/loops.json` (`$XDG_CACHE_HOME` if set), under the machine's fingerprint (CPU model,
  vector extensions, usable cores, oneDNN, GPUs, TensorFlow and Keras versions): another machine, or a
  new TensorFlow, measures again. A file that cannot be read or written is ignored; a probe that fails
  (say, out of memory at the stand-in size) logs a warning and the cell loop runs.
- Cost: a few tracings and 2 x PROBE_ROUNDS rounds of PROBE_ROUND_S (or 50 calls) per new key, once per machine (see
  docs/benchmarks.md for the apps' figures); nothing when the key is cached.
- Not probed: eager execution (op by op, "hoisted": fewer ops per step), and backends other than
  TensorFlow ("hoisted", measured faster on an H100 under JAX).
- Pinned: `NLP_LSTM_LOOP=hoisted` (or `cell`) in the environment, or `with nlp_lstm.loops.forced("cell"):`
  around the first call that traces.
- Exports: a SavedModel holds the graph traced when it was written, with the loop chosen then, on that
  machine; it does not choose again where it is served.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import math
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import keras
from keras import ops

# The backend's time loop, the one `keras.layers.RNN.inner_loop` runs: states stay loop variables
# rather than round-tripping through a stack each step as `keras.ops.scan` does on TensorFlow.
from keras.src import backend
from keras.src.backend.common.symbolic_scope import in_symbolic_scope

from nlp_lstm.checks import LOOP_ENV, LOOP_VARIANTS, pinned_loop  # noqa: F401 (LOOP_ENV: re-exported)

VARIANTS = LOOP_VARIANTS
CACHE_ENV = "NLP_LSTM_CACHE"
PROBE_BATCH = 64  # rows probed when the batch is unknown at tracing (the apps train with 64)
PROBE_STEPS = 256  # steps probed when the length is unknown at tracing
PROBE_ROUNDS = 5  # timed rounds of each variant, alternating; the medians are compared
PROBE_ROUND_S = 0.05  # a round repeats its call until it lasts this long (up to 50 calls)
# The hoisted loop is chosen only when its median is at least this much faster than the cell loop's. The
# cell loop runs keras.layers.LSTM's ops per step, so it ties with it; a near tie at the loop alone is
# within the probe's noise, and once went the other way in the whole model (0.94x at 400 steps x 256 units,
# training, where the cell loop read 1.04x; docs/benchmarks.md).
HOISTED_MARGIN = 0.05

_log = logging.getLogger(__name__)
_lock = threading.RLock()
_forced: list[str] = []
_chosen: dict[str, str] = {}  # this process's choices, by key


def on_accelerator() -> bool:
    """Whether Keras sees a GPU or TPU, where TensorFlow and JAX place new tensors by default (torch:
    Keras's default device). Read when the loop is traced; an explicit `tf.device` scope is not seen."""
    if keras.backend.backend() == "torch":  # keras.distribution has no torch implementation
        from keras.src.backend.torch.core import get_device

        return not str(get_device()).startswith("cpu")
    return any(not device.lower().startswith("cpu") for device in keras.distribution.list_devices())


def _product(matrix, training: bool):
    """`v @ matrix` as a function of v, for the time loop; in training on TensorFlow, with a backward pass
    that reads a transposed copy of the matrix made once per batch.

    Autodiff of `v @ M` gives d(v) = d(z) @ M^T, a MatMul with transpose_b, once per step. On
    TensorFlow's CPU kernels (2 cores, batch 64) that product took 2.9 ms at 256 units against
    0.95 ms for the same product on an untransposed copy, and it is on the backward pass's critical
    path; keras.layers.LSTM pays it too. Other backends keep plain autodiff, and so does inference:
    a SavedModel's traced custom gradient refers to a tensor inside the loop and cannot be replayed.
    """
    if keras.backend.backend() != "tensorflow" or not training:
        return lambda v: ops.matmul(v, matrix)
    matrix_t = ops.transpose(matrix)

    @ops.custom_gradient
    def product(v, m):
        def grad(*args, upstream=None):
            d_z = upstream if upstream is not None else args[0]  # (batch, 4 * units)
            return ops.matmul(d_z, matrix_t), ops.matmul(ops.transpose(v), d_z)

        return ops.matmul(v, m), grad

    return lambda v: product(v, matrix)


def lstm_step(z_x, h, c, recurrent_product, rec_mask):
    """One step from the input's part of the pre-activations z_x (batch, 4 * units); returns (h, c).
    The equations of `LSTMCell.gates_to_state`, with tanh and sigmoid written in: fewer ops per step."""
    h_in = h * rec_mask if rec_mask is not None else h
    z = z_x + recurrent_product(h_in)  # (batch, 4 * units)
    z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
    c_new = ops.sigmoid(z_f) * c + ops.sigmoid(z_i) * ops.tanh(z_c)
    h_new = ops.sigmoid(z_o) * ops.tanh(c_new)
    return h_new, c_new


def run(variant, x, h0, c0, kernel, recurrent_kernel, bias, mask=None, rec_mask=None, return_sequences=True,
        training=False, zero_output_for_mask=False):  # fmt: skip
    """The time loop: autodiff gives its backward pass, except the products' in training (`_product`).

    Args: variant, one of VARIANTS; x (batch, time, input_dim), already dropped out and in reading order;
    h0, c0 (batch, units); kernel (input_dim, 4 * units), recurrent_kernel (units, 4 * units) and bias
    (4 * units,) or None, as tensors of x's dtype; mask (batch, time) bool or None; rec_mask (batch, units)
    or None. Returns the outputs (batch, time, units) as keras.layers.RNN gives them (a masked step repeats
    the last output, zeros before any; zeros with `zero_output_for_mask`), or only the last (batch, 1,
    units); and h, c.
    """
    if variant not in VARIANTS:
        raise ValueError(f"loop must be one of {', '.join(VARIANTS)}, got {variant!r}")
    recurrent_product = _product(recurrent_kernel, training)
    if variant == "hoisted":
        inputs = ops.matmul(x, kernel)  # (batch, time, 4 * units), one product for all steps
        if bias is not None:
            inputs = inputs + bias

        def input_part(z_t):
            return z_t
    else:
        inputs = x
        input_product = _product(kernel, training)

        def input_part(x_t):
            z_t = input_product(x_t)
            return z_t + bias if bias is not None else z_t

    def step(input_t, states):
        h, c = lstm_step(input_part(input_t), states[0], states[1], recurrent_product, rec_mask)
        return h, [h, c]

    _, hs, (h, c) = backend.rnn(
        step, inputs, [h0, c0], mask=mask, return_all_outputs=return_sequences,
        zero_output_for_mask=zero_output_for_mask,
    )  # fmt: skip
    return hs, h, c


@contextlib.contextmanager
def forced(variant: str):
    """Runs every `choose` inside the block with `variant`, in every thread of the process: for tests, and
    benchmarks of one loop.

    Example:

    >>> from nlp_lstm import loops
    >>> with loops.forced("cell"):
    ...     loops.choose(units=8, input_dim=4, steps=5, batch=2, dtype="float32", training=False)
    'cell'
    """
    if variant not in VARIANTS:
        raise ValueError(f"loop must be one of {', '.join(VARIANTS)}, got {variant!r}")
    _forced.append(variant)
    try:
        yield
    finally:
        _forced.pop()


def _pinned() -> str | None:
    return _forced[-1] if _forced else pinned_loop()


def _tracing() -> tuple[bool, bool]:
    """(whether TensorFlow is tracing a graph now, whether that graph is compiled by XLA)."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False, False
    # tf.function(jit_compile=True) enters an XLA control-flow context while it traces (TensorFlow's own
    # test of nesting): there is no public call for it.
    return True, bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def cache_path() -> Path | None:
    """Where measured choices are kept: `$NLP_LSTM_CACHE`, else the user's cache folder (None: no home)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    root = os.environ.get("XDG_CACHE_HOME")
    if not root:
        try:
            root = Path.home() / ".cache"
        except RuntimeError:  # no home folder (a container's user without one): nowhere to keep it
            return None
    return Path(root) / "nlp_lstm" / "loops.json"


def _fingerprint() -> str:
    import tensorflow as tf

    from nlp_lstm import machine

    gpus = ",".join(machine.gpu_names()) or "none"
    return " | ".join(
        [machine.cpu_model(), ",".join(machine.vector_extensions()), f"{machine.cpus_usable()} cores",
         f"oneDNN {machine.onednn_on()}", f"GPUs {gpus}", f"TensorFlow {tf.__version__}", f"Keras {keras.__version__}"]
    )  # fmt: skip


def _read_cache(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_choice(key: str, record: dict[str, Any]) -> None:
    from nlp_lstm.files import atomic_write_json

    path = cache_path()
    if path is None:
        return
    # Read again, as another process may have added keys since; two writers at once can still lose one
    # another's keys, which costs a measurement next time.
    cache, fingerprint = _read_cache(path), _fingerprint()
    machine = cache.get(fingerprint)
    machine = machine if isinstance(machine, dict) else {}
    machine[key] = record
    cache[fingerprint] = machine
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, cache)
    except OSError as error:
        _log.warning("cannot keep the LSTM loop choice in %s (%s); it is measured again next time", path, error)


def decide(seconds: dict[str, float]) -> str:
    """The variant to run, from the probe's medians: "hoisted" only if clearly faster (HOISTED_MARGIN).

    Example:

    >>> from nlp_lstm.loops import decide
    >>> decide({"hoisted": 0.090, "cell": 0.100}), decide({"hoisted": 0.098, "cell": 0.100})
    ('hoisted', 'cell')
    """
    return "hoisted" if seconds["hoisted"] < (1.0 - HOISTED_MARGIN) * seconds["cell"] else "cell"


def _cached_choice(key: str) -> str | None:
    """The cached choice for `key`, decided again from its timings (so a change of rule applies to it)."""
    machine = _read_cache(cache_path()).get(_fingerprint())
    record = machine.get(key) if isinstance(machine, dict) else None
    seconds = record.get("seconds") if isinstance(record, dict) else None
    if not isinstance(seconds, dict) or not all(isinstance(seconds.get(v), (int, float)) for v in VARIANTS):
        return None
    return decide(seconds)


def probe(units, input_dim, steps, batch, dtype, training, xla, return_sequences=True, masked=False):
    """Seconds per run of each variant at this shape: the median of PROBE_ROUNDS rounds, taken in turn
    (A B, B A, ...) so that drift of a shared machine hits both alike. Runs eagerly (TensorFlow)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)

    def tensor(*shape):
        return tf.constant((rng.standard_normal(shape) * 0.1).astype("float32"), dtype=dtype)

    args = [tensor(batch, steps, input_dim), tensor(batch, units), tensor(batch, units),
            tensor(input_dim, 4 * units), tensor(units, 4 * units), tensor(4 * units)]  # fmt: skip
    mask = tf.ones((batch, steps), "bool") if masked else None

    def function(variant):
        def forward(x, h0, c0, kernel, recurrent_kernel, bias):
            hs, h, c = run(variant, x, h0, c0, kernel, recurrent_kernel, bias, mask, None, return_sequences, training)
            return tf.reduce_sum(tf.cast(hs, "float32")) + tf.reduce_sum(tf.cast(c, "float32"))

        def forward_backward(*tensors):
            with tf.GradientTape() as tape:
                tape.watch(tensors)
                loss = forward(*tensors)
            return tape.gradient(loss, tensors)

        return tf.function(forward_backward if training else forward, jit_compile=xla, autograph=False)

    functions = {variant: function(variant) for variant in VARIANTS}

    def seconds_for(variant, calls):
        start = time.perf_counter()
        for _ in range(calls):
            tf.nest.map_structure(lambda t: t.numpy(), functions[variant](*args))
        return (time.perf_counter() - start) / calls

    warm = {variant: [seconds_for(variant, 1) for _ in range(2)][-1] for variant in VARIANTS}  # trace, compile, warm
    # Calls per round: enough for a round to last PROBE_ROUND_S, so that a fast shape is not timed over
    # a few milliseconds of a shared machine.
    calls = max(1, min(50, math.ceil(PROBE_ROUND_S / max(min(warm.values()), 1e-6))))
    seconds = {variant: [] for variant in VARIANTS}
    for round_ in range(PROBE_ROUNDS):
        for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
            seconds[variant].append(seconds_for(variant, calls))
    return {variant: statistics.median(times) for variant, times in seconds.items()}


def choose(units, input_dim, steps, batch, dtype, training, return_sequences=True, masked=False) -> str:
    """The loop variant for this shape where the layer is being traced now (see the module's docstring).

    `steps` and `batch` may be None (unknown when tracing). Pinned variants come first; then eager
    execution and other backends ("hoisted"); then this process's choices, the cache file, a probe.
    """
    pinned = _pinned()
    if pinned:
        return pinned
    if keras.backend.backend() != "tensorflow" or in_symbolic_scope():  # symbolic: a graph for shapes only
        return "hoisted"
    tracing, xla = _tracing()
    if not tracing:
        return "hoisted"
    dtype = keras.backend.standardize_dtype(dtype)
    device = "accelerator" if on_accelerator() else "cpu"
    key = (
        f"units={units} input={input_dim} steps={steps} batch={batch} dtype={dtype} training={bool(training)} "
        f"xla={xla} sequences={bool(return_sequences)} masked={bool(masked)} {device}"
    )
    with _lock:
        if key in _chosen:
            return _chosen[key]
        loop = _cached_choice(key)
        if loop is None:
            start = time.perf_counter()
            # In a thread of its own: out of the graph being traced, eager, and out of the caller's
            # GradientTape (tf.init_scope would pause every tape, the probe's own too) and strategy.
            try:
                with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nlp_lstm-probe") as pool:
                    shape = (units, input_dim, steps or PROBE_STEPS, batch or PROBE_BATCH, dtype)
                    seconds = pool.submit(probe, *shape, bool(training), xla, bool(return_sequences), bool(masked))
                    seconds = seconds.result()
            except Exception as error:  # noqa: BLE001 - the choice is an optimisation: never fail the caller
                _log.warning("measuring the LSTM loops for %s failed (%s); running the cell loop", key, error)
                _chosen[key] = "cell"
                return "cell"
            loop = decide(seconds)
            record = {"loop": loop, "seconds": {k: round(v, 6) for k, v in seconds.items()},
                      "probe_s": round(time.perf_counter() - start, 3)}  # fmt: skip
            _log.info("LSTM loop for %s: %s (%s)", key, loop, record)
            _write_choice(key, record)
        _chosen[key] = loop
        return loop
