"""Benchmark: training and inference tokens/s of our LSTM against keras.layers.LSTM, same run.

A tiny classifier (Embedding -> recurrent layer -> Dense) on random token ids, for each sequence
length and width asked for, with three recurrent layers, each with and without XLA:
keras.layers.LSTM (the reference), keras.layers.RNN(nlp_lstm LSTMCell), nlp_lstm.layers.LSTM.
Models are timed in turn within each repeat, so drift of the shared machine hits all of them
alike; the table gives the median over repeats and the ratio to keras.layers.LSTM with the same
XLA setting.

    python scripts/bench_cell.py                       # the full table (about 15 minutes on 2 cores)
    python scripts/bench_cell.py --lengths 200 --units 64 --repeats 5
    python scripts/bench_cell.py --dry-run             # one tiny shape, one step: for CI
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
            dict(kind=kind, jit=jit, length=length, units=units,
                 train=tokens / statistics.median(train), infer=tokens / statistics.median(infer))
        )  # fmt: skip
    for row in rows:
        ref = next(r for r in rows if r["kind"] == REFERENCE and r["jit"] == row["jit"])
        row["train_ratio"] = row["train"] / ref["train"]
        row["infer_ratio"] = row["infer"] / ref["infer"]
    return rows


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
            for row in bench_shape(config, length, units):
                print(format_row(row), flush=True)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[200, 400], help="sequence lengths")
    parser.add_argument("--units", type=int, nargs="+", default=[64, 128, 256], help="LSTM widths")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per model (median)")
    parser.add_argument("--steps", type=int, default=2, help="batches per timed repeat")
    parser.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True models")
    parser.add_argument("--embedding", type=int, default=128, help="embedding width (the LSTM's input)")
    parser.add_argument("--dry-run", action="store_true", help="one tiny shape, one step, one repeat")
    args = parser.parse_args(argv)
    config = BenchConfig(
        lengths=tuple(args.lengths),
        units=tuple(args.units),
        batch=args.batch,
        embedding=args.embedding,
        repeats=args.repeats,
        steps=args.steps,
        xla=(False,) if args.no_xla else (False, True),
    )
    if args.dry_run:
        config = BenchConfig(lengths=(8,), units=(4,), batch=4, embedding=8, vocabulary=50,
                             steps=1, repeats=1)  # fmt: skip
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
