"""Benchmark: training and inference tokens/s of nlp_lstm.layers.LSTM against keras.layers.LSTM, same run.

Rows, each with XLA off and on (`jit_compile` False and True; Keras's "auto" is False on a CPU):
- a tiny classifier (Embedding 128 -> recurrent layer -> Dense) on random token ids, for each sequence
  length and width asked for;
- the apps' shapes: `sentiment`, Embedding 128 (masked) -> Bidirectional(LSTM(64)) -> mean -> Dense over
  reviews bucketed by length (a batch at each of 100, 200, 400 and 800 tokens, padded at the end as the
  app pads them); `nextword`, Embedding 256 -> LSTM(256) over 32 steps, every step's output used.

Each model is compiled, traced (our layer chooses its loop then, see nlp_lstm/loops.py) and warmed up;
then in each repeat every layer is timed in turn, in an order that alternates (A B, B A, ...), so drift of
a shared machine hits them alike. A row gives the median tokens/s, the median of the per-repeat ratios to
keras.layers.LSTM with its min-max, and PASS where the median ratio is at least the floor (0.95x).
`--variants` adds each loop variant forced, beside the chosen one.

The bound: the time of the matrix products alone that any LSTM of that shape must compute (forward, and
forward plus backward), in TensorFlow's kernels with nothing else in the loop; keras.layers.LSTM's time
divided by it is the most a layer built from these kernels could gain over it here.

    python scripts/bench_cell.py                       # every row (about 20 minutes on 2 cores)
    python scripts/bench_cell.py --lengths 200 --units 64 --no-apps --repeats 9
    python scripts/bench_cell.py --dry-run             # tiny shapes, one step: for CI
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace

from nlp_lstm.console import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from nlp_lstm import loops, machine  # noqa: E402
from nlp_lstm.layers import LSTM  # noqa: E402

REFERENCE = "keras.layers.LSTM"
FLOOR = 0.95


@dataclass(frozen=True)
class BenchConfig:
    lengths: tuple[int, ...] = (200, 400)
    units: tuple[int, ...] = (64, 128, 256)
    apps: bool = True
    batch: int = 64
    embedding: int = 128
    vocabulary: int = 20000
    steps: int = 2  # passes over the shape's batches per timing, at least
    min_seconds: float = 0.5  # and at least this long for keras.layers.LSTM
    repeats: int = 5
    xla: tuple[bool, ...] = (False, True)
    variants: bool = False  # also time each loop variant forced
    seed: int = 0
    floor: bool = True  # also time the matrix products alone (the bound)
    sentiment_lengths: tuple[int, ...] = (100, 200, 400, 800)
    nextword_steps: int = 32


def kinds(variants: bool) -> dict[str, tuple]:
    """Name -> (layer class, the context its model is traced and run in)."""
    table = {REFERENCE: (keras.layers.LSTM, contextlib.nullcontext), "nlp_lstm.LSTM": (LSTM, contextlib.nullcontext)}
    if variants:
        for variant in loops.VARIANTS:
            table[f"forced {variant}"] = (LSTM, lambda variant=variant: loops.forced(variant))
    return table


@dataclass
class Shape:
    """One row's model and data: `build(layer_class)` gives an uncompiled model; `batches` its inputs."""

    name: str
    length: int | str
    units: int
    build: object
    batches: list  # [(ids, targets)], one timing runs each once per step
    tokens: int  # tokens in `batches`
    bound_length: int | None  # the length the products-alone bound is measured at, or None


def classifier_shape(config: BenchConfig, length: int, units: int) -> Shape:
    rng = np.random.default_rng(config.seed)
    ids = rng.integers(1, config.vocabulary, (config.batch, length)).astype("int32")
    labels = rng.integers(0, 2, (config.batch, 1)).astype("float32")

    def build(layer_class):
        inputs = keras.Input((length,), dtype="int32")
        x = keras.layers.Embedding(config.vocabulary, config.embedding)(inputs)
        outputs = keras.layers.Dense(1, activation="sigmoid")(layer_class(units)(x))
        return keras.Model(inputs, outputs)

    return Shape("classifier", length, units, build, [(ids, labels)], ids.size, length)


def sentiment_shape(config: BenchConfig) -> Shape:
    """The sentiment app's BiLSTM over batches bucketed by length: each batch padded at its end, its
    reviews between half its width and its width long (the bucket), as the app's batches are."""
    rng = np.random.default_rng(config.seed)
    batches = []
    for width in config.sentiment_lengths:
        ids = rng.integers(2, config.vocabulary, (config.batch, width)).astype("int32")
        lengths = rng.integers(max(1, width // 2), width + 1, config.batch)
        ids[np.arange(width)[None, :] >= lengths[:, None]] = 0
        batches.append((ids, rng.integers(0, 2, (config.batch, 1)).astype("float32")))

    def build(layer_class):
        inputs = keras.Input((None,), dtype="int32")
        x = keras.layers.Embedding(config.vocabulary, 128, mask_zero=True)(inputs)
        x = keras.layers.Bidirectional(layer_class(64, return_sequences=True))(x)
        x = keras.layers.GlobalAveragePooling1D()(x)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))

    lengths = "/".join(str(w) for w in config.sentiment_lengths)
    return Shape("sentiment", lengths, 64, build, batches, sum(b[0].size for b in batches), None)


def nextword_shape(config: BenchConfig) -> Shape:
    """The next-word app's LSTM(256) over 32-token windows, every step's output used (a small head here:
    the app's sampled softmax is the same for both layers)."""
    rng = np.random.default_rng(config.seed)
    steps = config.nextword_steps
    ids = rng.integers(1, config.vocabulary, (config.batch, steps)).astype("int32")
    targets = rng.standard_normal((config.batch, steps, 1)).astype("float32")

    def build(layer_class):
        inputs = keras.Input((steps,), dtype="int32")
        x = keras.layers.Embedding(config.vocabulary, 256)(inputs)
        x = layer_class(256, return_sequences=True)(x)
        return keras.Model(inputs, keras.layers.Dense(1)(x))

    return Shape("nextword", steps, 256, build, [(ids, targets)], ids.size, None)


def time_model(model: keras.Model, batches: list, train_passes: int, infer_passes: int) -> tuple[float, float]:
    """Seconds for passes over the batches: training, then inference."""
    start = time.perf_counter()
    for _ in range(train_passes):
        for x, y in batches:
            model.train_on_batch(x, y)
    train = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(infer_passes):
        for x, _ in batches:
            np.asarray(model.predict_on_batch(x))
    return train, time.perf_counter() - start


def bench_shape(config: BenchConfig, shape: Shape, jit: bool) -> list[dict]:
    table = kinds(config.variants)
    known = set(loops._chosen)
    models = {}
    for kind, (layer_class, context) in table.items():
        keras.utils.set_random_seed(config.seed)
        with context():
            model = shape.build(layer_class)
            loss = "binary_crossentropy" if shape.name != "nextword" else "mse"
            model.compile(optimizer="adam", loss=loss, jit_compile=jit)
            for _ in range(3):  # trace, choose the loop, compile; Keras retraces once for new shapes
                time_model(model, shape.batches, 1, 1)
        models[kind] = model
    loop = chosen_loops(set(loops._chosen) - known)  # the keys this row's models traced
    # Passes per timing: at least `steps`, and enough for the reference to take `min_seconds`, so that a
    # fast inference is not timed over a few milliseconds.
    train_once, infer_once = time_model(models[REFERENCE], shape.batches, 1, 1)
    passes = [max(config.steps, math.ceil(config.min_seconds / max(t, 1e-6))) for t in (train_once, infer_once)]
    times = {kind: ([], []) for kind in models}
    order = list(models)
    for repeat in range(config.repeats):
        for kind in order if repeat % 2 == 0 else order[::-1]:
            with table[kind][1]():
                train, infer = time_model(models[kind], shape.batches, *passes)
            times[kind][0].append(train)
            times[kind][1].append(infer)
    rows = []
    for kind, (train, infer) in times.items():
        ref_train, ref_infer = times[REFERENCE]
        train_ratios = [r / t for r, t in zip(ref_train, train)]
        infer_ratios = [r / t for r, t in zip(ref_infer, infer)]
        rows.append(dict(kind=kind, shape=shape, jit=jit, loop=loop if kind == "nlp_lstm.LSTM" else "",
                         train=shape.tokens * passes[0] / statistics.median(train),
                         infer=shape.tokens * passes[1] / statistics.median(infer), train_ratios=train_ratios,
                         infer_ratios=infer_ratios))  # fmt: skip
    return rows


def chosen_loops(keys: set[str]) -> str:
    """The loops this process chose for these keys (one model's traces): "train / infer", two where two
    keys (say, a first shape and then unknown shapes) chose differently."""
    picks = {}
    for key in keys:
        picks.setdefault("train" if "training=True" in key else "infer", set()).add(loops._chosen[key])
    return " / ".join(",".join(sorted(picks.get(mode, {"?"}))) for mode in ("train", "infer"))


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


def bound_text(tokens: int, floor: tuple[float, float], reference: dict) -> str:
    """keras.layers.LSTM's time over the products' alone, training / inference: how much faster any layer
    built from these kernels could be. `floor` is (inference, training) seconds for `tokens` tokens."""
    return f"{tokens / floor[1] / reference['train']:.2f}x / {tokens / floor[0] / reference['infer']:.2f}x"


def ratio_cell(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def verdict(ratios: list[float]) -> str:
    return "PASS" if statistics.median(ratios) >= FLOOR else "FAIL"


HEADER = (
    "| shape | len | units | XLA | layer | loop (train / infer) | train tok/s | train vs keras | | "
    "infer tok/s | infer vs keras | | bound (train / infer) |\n"
    "| --- | ---: | ---: | --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- |"
)


def format_row(row: dict, bound: str) -> str:
    shape, ours = row["shape"], row["kind"] != REFERENCE
    loop = row["loop"]
    return (
        f"| {shape.name} | {shape.length} | {shape.units} | {'yes' if row['jit'] else 'no'} | {row['kind']} | {loop} "
        f"| {row['train']:,.0f} | {ratio_cell(row['train_ratios']) if ours else ''} "
        f"| {verdict(row['train_ratios']) if ours else ''} | {row['infer']:,.0f} "
        f"| {ratio_cell(row['infer_ratios']) if ours else ''} | {verdict(row['infer_ratios']) if ours else ''} "
        f"| {bound if ours else ''} |"
    )


def shapes(config: BenchConfig) -> list[Shape]:
    grid = [classifier_shape(config, length, units) for length in config.lengths for units in config.units]
    return grid + ([sentiment_shape(config), nextword_shape(config)] if config.apps else [])


def run(config: BenchConfig) -> list[dict]:
    print(f"# bench_cell on {machine.describe()}", flush=True)
    print(
        f"# batch {config.batch}, {config.repeats} repeats of >= {config.steps} passes and >= {config.min_seconds} s "
        "each, layers timed in turn; "
        f"median tokens/s; ratio = median of the per-repeat ratios to {REFERENCE} (min-max); "
        f"PASS at >= {FLOOR:.2f}x; loop cache {loops.cache_path()}",
        flush=True,
    )
    print(HEADER, flush=True)
    rows, fails = [], 0
    for shape in shapes(config):
        bound = ""
        if config.floor and shape.bound_length:
            floor = products_floor(config, shape.bound_length, shape.units)
        for jit in config.xla:
            shape_rows = bench_shape(config, shape, jit)
            if config.floor and shape.bound_length:
                ref = next(r for r in shape_rows if r["kind"] == REFERENCE)
                bound = bound_text(shape.tokens, floor, ref)
            for row in shape_rows:
                print(format_row(row, bound), flush=True)
                if row["kind"] == "nlp_lstm.LSTM":
                    fails += verdict(row["train_ratios"]) == "FAIL"
                    fails += verdict(row["infer_ratios"]) == "FAIL"
            rows.extend(shape_rows)
    print(f"# {fails} of the chosen layer's ratios under {FLOOR:.2f}x", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_cell.py", description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[200, 400], help="sequence lengths")
    parser.add_argument("--units", type=int, nargs="+", default=[64, 128, 256], help="LSTM widths")
    apps = parser.add_mutually_exclusive_group()
    apps.add_argument("--no-apps", action="store_true", help="skip the apps' shapes")
    apps.add_argument("--apps-only", action="store_true", help="only the apps' shapes")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per layer (median)")
    parser.add_argument("--steps", type=int, default=2, help="passes over the batches per timing, at least")
    parser.add_argument("--min-seconds", type=float, default=0.5,
                        help="and at least this long for keras.layers.LSTM (more passes for fast shapes)")  # fmt: skip
    xla = parser.add_mutually_exclusive_group()
    xla.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True models")
    xla.add_argument("--xla-only", action="store_true", help="skip the models without jit_compile")
    parser.add_argument("--variants", action="store_true", help="also time each loop variant, forced")
    parser.add_argument("--no-floor", action="store_true", help="skip the products-alone bound")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes, one step, one repeat")
    args = parser.parse_args(argv)
    config = BenchConfig(
        lengths=() if args.apps_only else tuple(args.lengths),
        units=tuple(args.units),
        apps=not args.no_apps,
        batch=args.batch,
        repeats=args.repeats,
        steps=args.steps,
        min_seconds=args.min_seconds,
        xla=(False,) if args.no_xla else (True,) if args.xla_only else (False, True),
        variants=args.variants,
        floor=not args.no_floor,
    )
    if args.dry_run:
        config = replace(config, lengths=(8,), units=(4,), batch=4, embedding=8, vocabulary=50, steps=1,
                         repeats=1, min_seconds=0.0, sentiment_lengths=(4, 8), nextword_steps=4)  # fmt: skip
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
