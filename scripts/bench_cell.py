"""Benchmark: training and inference tokens/s of our LSTM against keras.layers.LSTM, same run.

A tiny classifier (Embedding -> recurrent layer -> Dense) on random token ids, for each sequence
length and width asked for, with three recurrent layers, each with and without XLA:
keras.layers.LSTM (the reference), keras.layers.RNN(nlp_lstm LSTMCell), nlp_lstm.layers.LSTM.
Models are timed in turn within each repeat, so drift of the shared machine hits all of them
alike; the table gives the median over repeats and the ratio to keras.layers.LSTM with the same
XLA setting.

Below each shape, a bound: the time of the matrix products alone that any LSTM of that shape must
compute (forward, and forward plus backward), in TensorFlow's own kernels, with nothing else in
the loop; keras.layers.LSTM's time divided by it is the most any layer built from these kernels
could gain over it on this machine.

    python scripts/bench_cell.py                       # the full table (about 15 minutes on 2 cores)
    python scripts/bench_cell.py --lengths 200 --units 64 --repeats 5
    python scripts/bench_cell.py --dry-run             # one tiny shape, one step: for CI
    KERAS_BACKEND=jax python scripts/bench_cell.py --xla-only --no-floor   # on a GPU: against cuDNN
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from nlp_lstm.cell import LSTMCell  # noqa: E402
from nlp_lstm.layers import LSTM  # noqa: E402

KINDS = {
    "keras.layers.LSTM": lambda units: keras.layers.LSTM(units),
    "RNN(LSTMCell)": lambda units: keras.layers.RNN(LSTMCell(units)),
    "nlp_lstm.LSTM": lambda units: LSTM(units),
}
REFERENCE = "keras.layers.LSTM"


@dataclass(frozen=True)
class BenchConfig:
    lengths: tuple[int, ...] = (200, 400)
    units: tuple[int, ...] = (64, 128, 256)
    batch: int = 64
    embedding: int = 128
    vocabulary: int = 20000
    steps: int = 2  # batches per timing
    repeats: int = 3
    xla: tuple[bool, ...] = (False, True)
    seed: int = 0
    floor: bool = True  # also time the matrix products alone (the bound)


def build(kind: str, units: int, config: BenchConfig, length: int, jit: bool) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input((length,), dtype="int32")
    x = keras.layers.Embedding(config.vocabulary, config.embedding)(inputs)
    x = KINDS[kind](units)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=jit)
    return model


def time_model(model: keras.Model, x: np.ndarray, y: np.ndarray, steps: int) -> tuple[float, float]:
    """Seconds per batch for a training step and for an inference step."""
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    for _ in range(steps):
        np.asarray(model.predict_on_batch(x))
    infer = (time.perf_counter() - start) / steps
    return train, infer


def bench_shape(config: BenchConfig, length: int, units: int) -> list[dict]:
    rng = np.random.default_rng(config.seed)
    x = rng.integers(1, config.vocabulary, (config.batch, length)).astype("int32")
    y = rng.integers(0, 2, (config.batch, 1)).astype("float32")
    models = {}
    for kind in KINDS:
        for jit in config.xla:
            model = build(kind, units, config, length, jit)
            for _ in range(2):  # trace / compile outside the timings (the second call retraces once)
                model.train_on_batch(x, y)
                np.asarray(model.predict_on_batch(x))
            models[kind, jit] = model
    times = {key: ([], []) for key in models}
    for _ in range(config.repeats):
        for key, model in models.items():
            train, infer = time_model(model, x, y, config.steps)
            times[key][0].append(train)
            times[key][1].append(infer)
    tokens = config.batch * length
    rows = []
    for (kind, jit), (train, infer) in times.items():
        rows.append(
            dict(kind=kind, jit=jit, length=length, units=units, batch=config.batch,
                 train=tokens / statistics.median(train), infer=tokens / statistics.median(infer))
        )  # fmt: skip
    for row in rows:
        ref = next(r for r in rows if r["kind"] == REFERENCE and r["jit"] == row["jit"])
        row["train_ratio"] = row["train"] / ref["train"]
        row["infer_ratio"] = row["infer"] / ref["infer"]
    return rows


def products_floor(config: BenchConfig, length: int, units: int) -> tuple[float, float]:
    """Seconds per batch of an LSTM's matrix products alone: (inference, training).

    Inference: the input projection as one product, then one (batch, units) x (units, 4 units)
    product per step in a while loop, each step's input a slice of the last step's output as in a
    real recurrence; the faster of the two layouts (h @ R and R^T @ h^T) counts. Training adds the
    backward products: one (batch, 4 units) x (4 units, units) per step, chained by a tile, and the
    weight and input gradients as one product each over all steps. No gates, loss or optimizer.
    """
    import tensorflow as tf  # the floor is measured with TensorFlow's kernels, as the table is

    rng = np.random.default_rng(config.seed)

    def tensor(*shape):
        return tf.constant(rng.standard_normal(shape).astype("float32") * 0.05)

    batch, dim, gates = config.batch, config.embedding, 4 * units
    x, kernel = tensor(batch * length, dim), tensor(dim, gates)
    rec, rec_t = tensor(units, gates), tensor(gates, units)
    h0, h0_t, d0 = tensor(batch, units), tensor(units, batch), tensor(batch, gates)
    hs, dz = tensor(batch * length, units), tensor(batch * length, gates)

    def loop(step, h):
        return tf.while_loop(lambda t, h: t < length, lambda t, h: (t + 1, step(h)), (0, h))[1]

    def forward_batch_major():  # h (batch, units) @ R: the layout Keras uses
        h = loop(lambda h: tf.matmul(h, rec)[:, :units], h0)
        return tf.matmul(x, kernel)[0, 0] + h[0, 0]

    def forward_transposed():  # R^T @ h^T (units, batch): faster at some widths
        h = loop(lambda h: tf.matmul(rec_t, h)[:units], h0_t)
        return tf.matmul(x, kernel)[0, 0] + h[0, 0]

    def backward():  # per step d(h) = d(z) @ R^T, chained by a tile; weight and input gradients
        d = loop(lambda d: tf.tile(tf.matmul(d, rec_t), (1, 4)), d0)
        d_rec = tf.matmul(hs, dz, transpose_a=True)
        d_kernel = tf.matmul(x, dz, transpose_a=True)
        d_x = tf.matmul(dz, kernel, transpose_b=True)
        return d[0, 0] + d_rec[0, 0] + d_kernel[0, 0] + d_x[0, 0]

    def seconds(fn):
        fn = tf.function(fn, autograph=False)
        fn()
        times = []
        for _ in range(config.repeats):
            start = time.perf_counter()
            for _ in range(config.steps):
                float(fn())
            times.append((time.perf_counter() - start) / config.steps)
        return statistics.median(times)

    infer = min(seconds(forward_batch_major), seconds(forward_transposed))
    return infer, infer + seconds(backward)


def format_floor(rows: list[dict], floor: tuple[float, float]) -> str:
    tokens = rows[0]["batch"] * rows[0]["length"]
    refs = {row["jit"]: row for row in rows if row["kind"] == REFERENCE}
    bounds = ", ".join(
        f"{'XLA' if jit else 'no XLA'}: training <= {tokens / floor[1] / ref['train']:.2f}x, "
        f"inference <= {tokens / floor[0] / ref['infer']:.2f}x"
        for jit, ref in refs.items()
    )
    return (
        f"|      |      | products alone    |     | {tokens / floor[1]:>9,.0f} |        "
        f"| {tokens / floor[0]:>9,.0f} |        |\n"
        f"  (bound against keras.layers.LSTM, {bounds})"
    )


def backend_version() -> str:
    """The backend's version and whether it sees a GPU (the benchmark runs on any Keras backend)."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return f"{tf.__version__}, GPU: {bool(tf.config.list_physical_devices('GPU'))}"
    if name == "torch":
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        return f"{torch.__version__}, GPU: {gpu} (keras.layers.LSTM runs cuDNN through torch.nn.LSTM)"
    if name == "jax":
        import jax

        return f"{jax.__version__}, devices: {jax.devices()}"
    return ""


def format_row(row: dict) -> str:
    return (
        f"| {row['length']:>4} | {row['units']:>4} | {row['kind']:<17} | {'yes' if row['jit'] else 'no':<3} "
        f"| {row['train']:>9,.0f} | {row['train_ratio']:>5.2f}x | {row['infer']:>9,.0f} | {row['infer_ratio']:>5.2f}x |"
    )


HEADER = (
    "| len | units | layer | XLA | train tok/s | vs keras | infer tok/s | vs keras |\n"
    "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |"
)


def run(config: BenchConfig) -> list[dict]:
    print(
        f"# bench_cell: batch {config.batch}, embedding {config.embedding}, {config.repeats} repeats x "
        f"{config.steps} batches, median; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Keras {keras.__version__} on {keras.backend.backend()} "
        f"{backend_version()}",
        flush=True,
    )
    print(HEADER, flush=True)
    rows = []
    for length in config.lengths:
        for units in config.units:
            shape_rows = bench_shape(config, length, units)
            for row in shape_rows:
                print(format_row(row), flush=True)
            if config.floor and keras.backend.backend() == "tensorflow":
                print(format_floor(shape_rows, products_floor(config, length, units)), flush=True)
            rows.extend(shape_rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[200, 400], help="sequence lengths")
    parser.add_argument("--units", type=int, nargs="+", default=[64, 128, 256], help="LSTM widths")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per model (median)")
    parser.add_argument("--steps", type=int, default=2, help="batches per timed repeat")
    xla = parser.add_mutually_exclusive_group()
    xla.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True models")
    xla.add_argument(
        "--xla-only", action="store_true", help="skip the models without jit_compile (under JAX those run op by op)"
    )
    parser.add_argument("--embedding", type=int, default=128, help="embedding width (the LSTM's input)")
    parser.add_argument("--no-floor", action="store_true", help="skip the products-alone bound")
    parser.add_argument("--dry-run", action="store_true", help="one tiny shape, one step, one repeat")
    args = parser.parse_args(argv)
    config = BenchConfig(
        lengths=tuple(args.lengths),
        units=tuple(args.units),
        batch=args.batch,
        embedding=args.embedding,
        repeats=args.repeats,
        steps=args.steps,
        xla=(False,) if args.no_xla else (True,) if args.xla_only else (False, True),
        floor=not args.no_floor,
    )
    if args.dry_run:
        config = BenchConfig(lengths=(8,), units=(4,), batch=4, embedding=8, vocabulary=50,
                             steps=1, repeats=1, xla=config.xla, floor=config.floor)  # fmt: skip
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
