"""The sentiment app's commands: `train sentiment`, `evaluate sentiment`, `predict`.

Each `add_*` adds a command's parser, its flags' defaults read from `SentimentConfig` and
`DataConfig`; each `run_*` builds the configs (a bad value exits with status 2 and one line, before
TensorFlow loads), then imports the app and runs it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from nlp_lstm.checks import non_negative_int, positive_int, positive_number, usage_error
from nlp_lstm.cli.common import DRY_RUN_LIMIT, add_data_argument, add_dry_run_argument, fraction
from nlp_lstm.data_config import DataConfig
from nlp_lstm.distribute import add_strategy_arguments, make_strategy, strategy_config_from_args
from nlp_lstm.sentiment.config import (
    DEFAULT_MODEL_DIR,
    FINETUNE_DEFAULTS,
    LEARNING_RATE_DECAYS,
    SentimentConfig,
    dry_run_config,
    with_encoder,
)

DRY_RUN_TEXTS = ("A wonderful, moving film.", "Dull and far too long.")


def add_train_command(apps: Any) -> None:
    """Adds `train sentiment`; its flags' defaults are SentimentConfig's and DataConfig's."""
    d, data = SentimentConfig(), DataConfig()
    from_default = "(default: %(default)s)"
    parser = apps.add_parser(
        "sentiment", help="train the IMDB sentiment classifier",
        description="Trains the bidirectional-LSTM sentiment classifier on IMDB; rerun the same command "
        "after an interruption to resume. Writes model.keras, vocabulary.txt, config.json, metrics.json, "
        "history.csv, curves.png and logs/ to --out.",
    )  # fmt: skip
    add_data_argument(parser, "the reviews to train on")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"the model folder to write (default: {DEFAULT_MODEL_DIR}; with --dry-run a "
                        f"temporary folder)")  # fmt: skip
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished model in --out (otherwise refused, so that none is lost)",
    )

    def both(name: str) -> str:  # the default of a flag whose value --encoder changes
        return f"(default: {getattr(d, name):g}; with --encoder {FINETUNE_DEFAULTS[name]:g})"

    parser.add_argument("--encoder", metavar="DIR", default=None,
                        help="start from this next-word model folder (nlp-lstm train nextword): its vocabulary, "
                        "word vectors and LSTM, fine-tuned by gradual unfreezing (default: a bidirectional LSTM "
                        "from random weights)")  # fmt: skip
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help=f"epochs at most (and of the cosine decay) {both('epochs')}"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help=f"epochs without a better val accuracy before stopping {from_default}",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help=f"seed of the validation split, weights, dropout and batch order {from_default}",
    )
    parser.add_argument(
        "--val-fraction",
        type=fraction,
        default=data.val_fraction,
        help=f"fraction of train held out for validation {from_default}",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="use at most this many reviews of each split (default: all)"
    )
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        default=d.max_tokens,
        help=f"vocabulary size, counting padding and [UNK] {from_default}",
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=d.max_length,
        help=f"tokens kept from the start of each review {from_default}",
    )
    parser.add_argument(
        "--embedding-dim", type=positive_int, default=d.embedding_dim, help=f"word vector size {from_default}"
    )
    parser.add_argument("--units", type=positive_int, default=d.units, help=f"LSTM units per direction {from_default}")
    parser.add_argument("--ngram-buckets", type=non_negative_int, default=d.ngram_buckets,
                        help="hash buckets for the word pairs of the n-gram member (NBSVM's logistic regression on "
                        f"words and word pairs, averaged with the BiLSTMs), 0 for none {from_default}")  # fmt: skip
    parser.add_argument(
        "--ngram-c",
        type=positive_number,
        default=d.ngram_c,
        help=f"inverse strength of the n-gram member's L2 penalty, as liblinear's C {from_default}",
    )
    parser.add_argument(
        "--embedding-dropout",
        type=fraction,
        default=None,
        help=f"dropout on the word vectors {both('embedding_dropout')}",
    )
    parser.add_argument(
        "--head-dropout", type=fraction, default=None, help=f"dropout before the output layer {both('head_dropout')}"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=d.batch_size, help=f"reviews per batch {from_default}"
    )
    parser.add_argument(
        "--learning-rate",
        type=positive_number,
        default=None,
        help=f"Adam's learning rate (with --encoder the head's; each layer below takes 1/2.6 of the one above) "
        f"{both('learning_rate')}",
    )
    parser.add_argument("--learning-rate-decay", choices=LEARNING_RATE_DECAYS, default=d.learning_rate_decay,
                        help="cosine: the learning rate falls to 0 along a half cosine over --epochs; none: it stays "
                        f"{from_default}")  # fmt: skip
    parser.add_argument(
        "--backup-every",
        type=positive_int,
        default=d.backup_every,
        help=f"back up the training state every this many steps, for resuming {from_default}",
    )
    parser.add_argument("--max-train-minutes", type=positive_number, default=d.max_train_minutes,
                        help="stop after the epoch when another would take training past this many minutes "
                        "(default: no limit)")  # fmt: skip
    add_strategy_arguments(parser)
    add_dry_run_argument(parser, "train a tiny model for one step on a handful of reviews")
    parser.set_defaults(run=_run_train_sentiment)


def _sentiment_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The configs of `train sentiment`'s flags; a bad value exits with status 2 and one line (no TensorFlow yet)."""
    defaults = {**{name: getattr(SentimentConfig, name) for name in FINETUNE_DEFAULTS},
                **(FINETUNE_DEFAULTS if args.encoder else {})}  # fmt: skip
    given = {name: defaults[name] if getattr(args, name) is None else getattr(args, name) for name in defaults}
    try:
        config = SentimentConfig(
            max_tokens=args.max_tokens, max_length=args.max_length, embedding_dim=args.embedding_dim,
            units=args.units, ngram_buckets=args.ngram_buckets, ngram_c=args.ngram_c,
            batch_size=args.batch_size, learning_rate_decay=args.learning_rate_decay,
            patience=args.patience, seed=args.seed, backup_every=args.backup_every,
            max_train_minutes=args.max_train_minutes, **given,
        )  # fmt: skip
        limit = DRY_RUN_LIMIT if args.dry_run else args.limit
        data_config = DataConfig(source=args.data, val_fraction=args.val_fraction, seed=args.seed, limit=limit)
    except ValueError as error:
        raise usage_error("nlp-lstm train sentiment", error) from None
    if args.encoder:
        sized = {"max_tokens": args.max_tokens, "embedding_dim": args.embedding_dim, "units": args.units}
        changed = [name for name, value in sized.items() if value != getattr(SentimentConfig, name)]
        if changed:
            flags = ", ".join("--" + name.replace("_", "-") for name in changed)
            error = f"{flags}: with --encoder the next-word model's sizes are used"
            raise usage_error("nlp-lstm train sentiment", error)
        config = with_encoder(config, args.encoder)  # a folder that is not a next-word model: one line, exit 2
    return data_config, dry_run_config(config) if args.dry_run else config


def _run_train_sentiment(args: argparse.Namespace) -> int:
    data_config, config = _sentiment_configs(args)
    strategy = make_strategy(strategy_config_from_args(args))  # first: a cluster forms before TensorFlow runs
    from nlp_lstm.sentiment.train import sentiment_fit_config, train_sentiment

    out = args.out or (tempfile.mkdtemp(prefix="nlp-lstm-dry-run-") if args.dry_run else DEFAULT_MODEL_DIR)
    metrics = train_sentiment(
        data_config,
        config,
        out,
        sentiment_fit_config(config, dry_run=args.dry_run),
        overwrite=args.overwrite,
        strategy=strategy,
        command=getattr(args, "command_line", None),
    )
    if "test_accuracy" not in metrics:  # a worker other than the chief: the chief reports
        print(f"worker {metrics['task']} done after {metrics['epochs']} epoch(s); the chief wrote the model")
        return 0
    print(
        f"val accuracy {metrics['val_accuracy']:.4f}, test accuracy {metrics['test_accuracy']:.4f} "
        f"after {metrics['epochs']} epoch(s); {metrics['wall_time_s']:.0f} s wall time; model in {out}"
    )
    return 0


def _dry_run_model(data: str | None) -> str:
    """Trains a tiny sentiment model in a temporary folder (for --dry-run without --model)."""
    from nlp_lstm.sentiment.train import sentiment_fit_config, train_sentiment

    out = tempfile.mkdtemp(prefix="nlp-lstm-dry-run-")
    print(f"dry run: training a tiny model in {out}", file=sys.stderr)
    config = dry_run_config()
    train_sentiment(DataConfig(source=data, limit=DRY_RUN_LIMIT, verbose=False), config, out,
                    sentiment_fit_config(config, dry_run=True, verbose=0))  # fmt: skip
    return out


def add_model_arguments(parser: argparse.ArgumentParser, dry_run_what: str) -> None:
    parser.add_argument("--model", metavar="DIR", default=None,
                        help=f"the model folder a training run wrote (default: {DEFAULT_MODEL_DIR}; with "
                        f"--dry-run, a tiny model trained on the spot)")  # fmt: skip
    add_data_argument(parser, "with --dry-run and no --model, the reviews to train the tiny model on")
    add_dry_run_argument(parser, dry_run_what)


def model_dir_of(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    return _dry_run_model(args.data) if args.dry_run else DEFAULT_MODEL_DIR


def add_evaluate_command(apps: Any) -> None:
    parser = apps.add_parser(
        "sentiment", help="score the sentiment classifier on the IMDB test split",
        description="Accuracy, precision, recall, F1 and the confusion matrix on the test split.",
    )  # fmt: skip
    parser.add_argument("--model", metavar="DIR", default=None,
                        help=f"the model folder to score (default: {DEFAULT_MODEL_DIR}; with --dry-run, a "
                        f"tiny model trained on the spot on --data)")  # fmt: skip
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="the reviews whose test split is scored: an aclImdb folder or .tar.gz (default: "
                        "the data the model was trained on, as its config.json says)")  # fmt: skip
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="score at most this many test reviews (default: all 25,000)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=None, help="reviews per batch (default: the training batch size)"
    )
    add_dry_run_argument(parser, "score a handful of test reviews")
    parser.set_defaults(run=_run_evaluate_sentiment)


def _run_evaluate_sentiment(args: argparse.Namespace) -> int:
    from nlp_lstm.sentiment.evaluate import evaluate_sentiment
    from nlp_lstm.sentiment.predict import load_sentiment_model

    model_dir = model_dir_of(args)
    loaded = load_sentiment_model(model_dir)  # before reading data: a bad folder fails fast
    limit = DRY_RUN_LIMIT if args.dry_run else args.limit
    source = args.data if args.data is not None else loaded.data_source
    metrics = evaluate_sentiment(loaded, DataConfig(source=source, limit=limit), args.batch_size)
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    print(f"test reviews  {metrics['n']}")
    for name in ("accuracy", "precision", "recall", "f1"):
        print(f"{name:<13} {metrics[name]:.4f}")
    print("confusion matrix (rows: true, columns: predicted)")
    print(f"{'':>8}{'neg':>8}{'pos':>8}\n{'neg':>8}{tn:>8}{fp:>8}\n{'pos':>8}{fn:>8}{tp:>8}")
    return 0


def add_predict_command(commands: Any) -> None:
    parser = commands.add_parser(
        "predict", help="label texts as neg or pos",
        description="Prints label, P(pos) and the text (shortened, control characters escaped), tab-separated, "
        "one line per text. A text with no word the model knows (empty, or another language) is labelled none, "
        "with - for P(pos), and counted in a note on stderr.",
    )  # fmt: skip
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label (none: one text per line from stdin)")
    add_model_arguments(parser, "label two sample texts (or those given) with a tiny model")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="texts per batch (default: 64)")
    parser.set_defaults(run=_run_predict)


def _stdin_lines() -> list[bytes]:
    # Bytes, not str: a line that is not UTF-8 still gets a prediction (the model replaces bad bytes).
    return [line.rstrip(b"\r\n") for line in sys.stdin.buffer]


def shown_text(text: str | bytes, width: int = 80) -> str:
    """`text` as predict prints it: one line, control characters escaped, at most `width` characters.

    Runs of white space become one space; other control characters (ESC, NUL, DEL, C1) are written as
    `\\xNN`, so nothing in a text reaches the terminal as a command. Bytes that are not UTF-8 become
    U+FFFD (or "?" in a command-line argument).

    Example:

    >>> from nlp_lstm.cli.sentiment import shown_text
    >>> print(shown_text("red \\x1b[31mALERT\\x1b[0m\\x00  and\\tmore"))
    red \\x1b[31mALERT\\x1b[0m\\x00 and more
    """
    shown = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    shown = shown.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates of argv
    shown = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", " ".join(shown.split()))
    return shown if len(shown) <= width else shown[: width - 3] + "..."


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 controls (white space is gone by then)


def _run_predict(args: argparse.Namespace) -> int:
    from nlp_lstm.sentiment.predict import load_sentiment_model, predict_sentiment

    model_dir = model_dir_of(args)
    loaded = load_sentiment_model(model_dir)
    texts: Sequence[str | bytes] = args.texts or (list(DRY_RUN_TEXTS) if args.dry_run else _stdin_lines())
    unjudged = 0
    for text, prediction in zip(texts, predict_sentiment(loaded, texts, args.batch_size)):
        probability = f"{prediction.probability:.4f}" if prediction.judged else "-"
        unjudged += not prediction.judged
        print(f"{prediction.label}\t{probability}\t{shown_text(text)}")
    if unjudged:
        print(f"nlp-lstm: note: {unjudged} of {len(texts)} text(s) hold no word the model knows (empty, or every word "
              f"out of its vocabulary): labelled none, without a probability", file=sys.stderr)  # fmt: skip
    return 0


def add_explain_command(commands: Any) -> None:
    """Adds `explain`: each word's contribution to the sentiment verdict."""
    parser = commands.add_parser(
        "explain", help="show which words made a sentiment verdict",
        description="Prints the verdict, then each word tinted by its contribution to P(pos) (green for pos, red "
        "for neg) on a terminal, or one word per line with its contribution otherwise. The n-gram member's "
        "contributions are exact; the LSTM's come from integrated gradients (docs/sentiment.md).",
    )  # fmt: skip
    parser.add_argument("text", metavar="TEXT", help="the text to explain")
    add_model_arguments(parser, "explain the text with a tiny model")
    parser.add_argument("--steps", type=positive_int, default=64,
                        help="integrated-gradients steps for the LSTM member (default: %(default)s)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the explanation as one JSON object")
    parser.set_defaults(run=_run_explain)


def tinted(word: str, contribution: float, scale: float) -> str:
    """`word` on a background whose hue says the sign and whose depth the size of `contribution`.

    Example:

    >>> from nlp_lstm.cli.sentiment import tinted
    >>> tinted("good", 0.5, 0.5)
    '\\x1b[48;2;0;140;0m\\x1b[97mgood\\x1b[0m'
    """
    depth = min(abs(contribution) / scale, 1.0) if scale > 0 else 0.0
    level = round(255 - depth * 255)  # white at 0, full colour at the largest contribution
    red, green, blue = (
        (level, 255 - round(depth * 115), level) if contribution >= 0 else (255 - round(depth * 55), level, level)
    )
    text = "\x1b[97m" if depth > 0.6 else "\x1b[30m"
    return f"\x1b[48;2;{red};{green};{blue}m{text}{shown_text(word)}\x1b[0m"


def _run_explain(args: argparse.Namespace) -> int:
    import json

    from nlp_lstm.sentiment.explain import explain
    from nlp_lstm.sentiment.predict import load_sentiment_model

    if args.steps > 1024:
        raise usage_error("nlp-lstm explain", f"argument --steps: must be at most 1024, got {args.steps}")
    loaded = load_sentiment_model(model_dir_of(args))
    why = explain(loaded, args.text, args.steps)
    if args.json:
        print(json.dumps(why.to_json(), ensure_ascii=False))
        return 0
    verdict = f"{why.label} {why.probability:.4f}" if why.judged else "none (no word the model knows)"
    print(f"{verdict}  members: " + ", ".join(f"{k} {p:.4f}" for k, p in why.probabilities.items()))
    if sys.stdout.isatty():
        scale = max((abs(c) for c in why.combined), default=0.0)
        print(" ".join(tinted(w, c, scale) for w, c in zip(why.words, why.combined)))
    else:
        for word, contribution in zip(why.words, why.combined):
            print(f"{shown_text(word)}\t{contribution:+.4f}")
    return 0
