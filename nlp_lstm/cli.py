"""The `nlp-lstm` command: one entry point, a subcommand per job (spaCy / fairseq style).

    nlp-lstm train sentiment [--data PATH] [--out DIR] [--epochs N] [--seed S] [--dry-run] ...
    nlp-lstm evaluate sentiment [--model DIR] [--data PATH] [--dry-run]
    nlp-lstm predict [--model DIR] [--dry-run] "text" ...      (no text: one per line from stdin)
    nlp-lstm export [--model DIR] --out EXPORT_DIR [--dry-run]  (sentiment or nextword, by config.json)
    nlp-lstm train nextword | evaluate nextword | prompt ...    (the next-word app, see below)

This file only parses arguments, builds configs and calls the package; heavy imports (TensorFlow)
happen inside the commands, so `--help` is quick. TensorFlow's C++ start-up lines are kept off stderr
(`nlp_lstm.console`) unless `nlp-lstm --verbose` or NLP_LSTM_VERBOSE=1 asks for them.

The next-word app plugs in without this file importing it up front: `train nextword`,
`evaluate nextword` and `prompt` import a module when run whose `add_train_arguments(parser)` /
`add_evaluate_arguments(parser)` / `add_prompt_arguments(parser)` add their flags, then (for `train
nextword`) `check_train_arguments(args)` builds and checks the configs, and only then the module
that runs it is imported and `run_train(args)` / `run_evaluate(args)` / `run_prompt(args)` called
(they return an exit status or None). `train nextword` takes its flags from
`nlp_lstm.nextword_config`, which imports no TensorFlow, so a bad value is refused before
TensorFlow loads. A missing module makes the command say it is not available.

Errors a user can fix (a bad value, bad data, a bad model folder, an unwritable folder: ValueError
while the configs are built, DataError, ModelFolderError, OSError) print one line on stderr and exit
with status 2; success is 0. Every value a user passes is checked by the config dataclasses
(`nlp_lstm.sentiment_config`, `nlp_lstm.nextword_config`, `nlp_lstm.data_config`), before
TensorFlow is imported.

`--dry-run` on every command runs the same code on a handful of examples and a tiny model, in
seconds, for CI: `train` writes to a temporary folder unless `--out` is given; `evaluate`,
`predict` and `export` without `--model` first train such a tiny model on `--data`.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from nlp_lstm import __version__
from nlp_lstm.checks import non_negative_int, positive_int, usage_error
from nlp_lstm.console import VERBOSE_ENV, quiet_tensorflow
from nlp_lstm.distribute import add_strategy_arguments, make_strategy, strategy_config_from_args
from nlp_lstm.run_folder import TrainingDiverged, unlock_all, user_command

DEFAULT_SENTIMENT_DIR = "saved_models/sentiment"  # = nlp_lstm.sentiment.DEFAULT_MODEL_DIR, without importing TF
DRY_RUN_LIMIT = 16  # reviews per split in a dry run
DRY_RUN_TEXTS = ("A wonderful, moving film.", "Dull and far too long.")
# (subcommand path, module of the flags, function adding them, function checking the parsed flags or None,
#  module running it, function running it, help)
NEXTWORD_HOOKS = (
    (("train", "nextword"), "nlp_lstm.nextword_config", "add_train_arguments", "check_train_arguments",
     "nlp_lstm.nextword", "run_train", "train the next-word model"),
    (("evaluate", "nextword"), "nlp_lstm.nextword_eval", "add_evaluate_arguments", None, "nlp_lstm.nextword_eval",
     "run_evaluate", "evaluate the next-word model"),
    (("prompt",), "nlp_lstm.prompt", "add_prompt_arguments", None, "nlp_lstm.prompt", "run_prompt",
     "suggest next words, interactively"),
)  # fmt: skip


class _CommandUnavailable(Exception):
    """A subcommand whose module is missing or broken."""


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _add_data_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--data", metavar="PATH", default=None,
        help=f"{what}: an extracted aclImdb folder or a .tar.gz of it (default: tensorflow-datasets' "
        f"imdb_reviews, downloaded on first use)",
    )  # fmt: skip


def _add_dry_run_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--dry-run", action="store_true", help=f"{what}, in seconds (for CI)")


def _add_train_sentiment(apps: Any) -> None:
    from_default = "(default: %(default)s)"
    parser = apps.add_parser(
        "sentiment", help="train the IMDB sentiment classifier",
        description="Trains the bidirectional-LSTM sentiment classifier on IMDB; rerun the same command "
        "after an interruption to resume. Writes model.keras, vocabulary.txt, config.json, metrics.json, "
        "history.csv, curves.png and logs/ to --out.",
    )  # fmt: skip
    _add_data_arguments(parser, "the reviews to train on")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"the model folder to write (default: {DEFAULT_SENTIMENT_DIR}; with --dry-run a "
                        f"temporary folder)")  # fmt: skip
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished model in --out (otherwise refused, so that none is lost)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=3, help=f"epochs at most (and of the cosine decay) {from_default}"
    )
    parser.add_argument(
        "--patience", type=int, default=2, help=f"epochs without a better val accuracy before stopping {from_default}"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1337,
        help=f"seed of the validation split, weights, dropout and batch order {from_default}",
    )
    parser.add_argument(
        "--val-fraction", type=_fraction, default=0.1, help=f"fraction of train held out for validation {from_default}"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="use at most this many reviews of each split (default: all)"
    )
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        default=20_000,
        help=f"vocabulary size, counting padding and [UNK] {from_default}",
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=800,
        help=f"tokens kept from the start of each review {from_default}",
    )
    parser.add_argument("--embedding-dim", type=positive_int, default=128, help=f"word vector size {from_default}")
    parser.add_argument("--units", type=positive_int, default=64, help=f"LSTM units per direction {from_default}")
    parser.add_argument("--ngram-buckets", type=non_negative_int, default=1 << 22,
                        help="hash buckets for the word pairs of the n-gram member (NBSVM's logistic regression on "
                        f"words and word pairs, averaged with the BiLSTMs), 0 for none {from_default}")  # fmt: skip
    parser.add_argument(
        "--ngram-c",
        type=float,
        default=1.0,
        help=f"inverse strength of the n-gram member's L2 penalty, as liblinear's C {from_default}",
    )
    parser.add_argument(
        "--embedding-dropout", type=_fraction, default=0.5, help=f"dropout on the word vectors {from_default}"
    )
    parser.add_argument(
        "--head-dropout", type=_fraction, default=0.5, help=f"dropout before the output layer {from_default}"
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help=f"reviews per batch {from_default}")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help=f"Adam's learning rate {from_default}")
    parser.add_argument("--learning-rate-decay", choices=("cosine", "none"), default="cosine",
                        help="cosine: the learning rate falls to 0 along a half cosine over --epochs; none: it stays "
                        f"{from_default}")  # fmt: skip
    parser.add_argument(
        "--backup-every",
        type=positive_int,
        default=50,
        help=f"back up the training state every this many steps, for resuming {from_default}",
    )
    parser.add_argument("--max-train-minutes", type=float, default=None,
                        help="stop after the epoch when another would take training past this many minutes "
                        "(default: no limit)")  # fmt: skip
    add_strategy_arguments(parser)
    _add_dry_run_argument(parser, "train a tiny model for one step on a handful of reviews")
    parser.set_defaults(run=_run_train_sentiment)


def _sentiment_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The configs of `train sentiment`'s flags; a bad value exits with status 2 and one line (no TensorFlow yet)."""
    from nlp_lstm.data_config import DataConfig
    from nlp_lstm.sentiment_config import SentimentConfig, dry_run_config

    try:
        config = SentimentConfig(
            max_tokens=args.max_tokens, max_length=args.max_length, embedding_dim=args.embedding_dim,
            units=args.units, ngram_buckets=args.ngram_buckets, ngram_c=args.ngram_c,
            embedding_dropout=args.embedding_dropout, head_dropout=args.head_dropout,
            batch_size=args.batch_size, learning_rate=args.learning_rate,
            learning_rate_decay=args.learning_rate_decay, epochs=args.epochs,
            patience=args.patience, seed=args.seed, backup_every=args.backup_every,
            max_train_minutes=args.max_train_minutes,
        )  # fmt: skip
        limit = DRY_RUN_LIMIT if args.dry_run else args.limit
        data_config = DataConfig(source=args.data, val_fraction=args.val_fraction, seed=args.seed, limit=limit)
    except ValueError as error:
        raise usage_error("nlp-lstm train sentiment", error) from None
    return data_config, dry_run_config(config) if args.dry_run else config


def _run_train_sentiment(args: argparse.Namespace) -> int:
    data_config, config = _sentiment_configs(args)
    strategy = make_strategy(strategy_config_from_args(args))  # first: a cluster forms before TensorFlow runs
    from nlp_lstm.sentiment import sentiment_fit_config, train_sentiment

    out = args.out or (tempfile.mkdtemp(prefix="nlp-lstm-dry-run-") if args.dry_run else DEFAULT_SENTIMENT_DIR)
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
    from nlp_lstm.data_config import DataConfig
    from nlp_lstm.sentiment import dry_run_config, sentiment_fit_config, train_sentiment

    out = tempfile.mkdtemp(prefix="nlp-lstm-dry-run-")
    print(f"dry run: training a tiny model in {out}", file=sys.stderr)
    config = dry_run_config()
    train_sentiment(DataConfig(source=data, limit=DRY_RUN_LIMIT, verbose=False), config, out,
                    sentiment_fit_config(config, dry_run=True, verbose=0))  # fmt: skip
    return out


def _model_arguments(parser: argparse.ArgumentParser, dry_run_what: str) -> None:
    parser.add_argument("--model", metavar="DIR", default=None,
                        help=f"the model folder a training run wrote (default: {DEFAULT_SENTIMENT_DIR}; with "
                        f"--dry-run, a tiny model trained on the spot)")  # fmt: skip
    _add_data_arguments(parser, "with --dry-run and no --model, the reviews to train the tiny model on")
    _add_dry_run_argument(parser, dry_run_what)


def _model_dir(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    return _dry_run_model(args.data) if args.dry_run else DEFAULT_SENTIMENT_DIR


def _add_evaluate_sentiment(apps: Any) -> None:
    parser = apps.add_parser(
        "sentiment", help="score the sentiment classifier on the IMDB test split",
        description="Accuracy, precision, recall, F1 and the confusion matrix on the test split.",
    )  # fmt: skip
    parser.add_argument("--model", metavar="DIR", default=None,
                        help=f"the model folder to score (default: {DEFAULT_SENTIMENT_DIR}; with --dry-run, a "
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
    _add_dry_run_argument(parser, "score a handful of test reviews")
    parser.set_defaults(run=_run_evaluate_sentiment)


def _run_evaluate_sentiment(args: argparse.Namespace) -> int:
    from nlp_lstm.data_config import DataConfig
    from nlp_lstm.sentiment import evaluate_sentiment, load_sentiment_model

    model_dir = _model_dir(args)
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


def _add_predict(commands: Any) -> None:
    parser = commands.add_parser(
        "predict", help="label texts as neg or pos",
        description="Prints label, P(pos) and the text (shortened, control characters escaped), tab-separated, "
        "one line per text. A text with no word the model knows (empty, or another language) is labelled none, "
        "with - for P(pos), and counted in a note on stderr.",
    )  # fmt: skip
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label (none: one text per line from stdin)")
    _model_arguments(parser, "label two sample texts (or those given) with a tiny model")
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

    >>> from nlp_lstm.cli import shown_text
    >>> print(shown_text("red \\x1b[31mALERT\\x1b[0m\\x00  and\\tmore"))
    red \\x1b[31mALERT\\x1b[0m\\x00 and more
    """
    shown = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    shown = shown.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates of argv
    shown = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", " ".join(shown.split()))
    return shown if len(shown) <= width else shown[: width - 3] + "..."


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 controls (white space is gone by then)


def _run_predict(args: argparse.Namespace) -> int:
    from nlp_lstm.sentiment import load_sentiment_model, predict_sentiment

    model_dir = _model_dir(args)
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


def _add_export(commands: Any) -> None:
    parser = commands.add_parser(
        "export", help="export a model as a TensorFlow SavedModel for serving",
        description="Writes EXPORT_DIR/<version>/ (TF Serving's layout; version = the largest there + 1). "
        "A sentiment export's serving_default takes `text` (tf.string [None]) and returns `probability` "
        "(float32 [None], P(pos)) and `label` (int64 [None], 0 neg / 1 pos).",
    )  # fmt: skip
    _model_arguments(parser, "export a tiny model")
    parser.add_argument("--out", metavar="EXPORT_DIR", default=None,
                        help="the folder holding the versions (required, except with --dry-run: then a "
                        "temporary folder)")  # fmt: skip
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from nlp_lstm.training import read_model_config

    if args.out is None and not args.dry_run:
        raise usage_error("nlp-lstm export", "--out EXPORT_DIR is required")
    model_dir = _model_dir(args)
    export_dir = args.out or tempfile.mkdtemp(prefix="nlp-lstm-dry-run-export-")
    app = read_model_config(model_dir)["app"]
    if app == "sentiment":
        from nlp_lstm.export import export_sentiment

        path = export_sentiment(model_dir, export_dir)
    elif app == "nextword":
        export_nextword = _hook_function("nlp_lstm.nextword_export", "export_nextword", "export (nextword)")
        path = export_nextword(model_dir, export_dir)
    else:
        from nlp_lstm.training import ModelFolderError

        raise ModelFolderError(f"{model_dir} holds a model of an unknown app {app!r}; cannot export it")
    print(f"exported {model_dir} to {path}")
    return 0


def _hook_function(module_name: str, function_name: str, command: str) -> Callable[..., Any]:
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # missing, or broken while its author works on it
        raise _CommandUnavailable(
            f"'{command}' is not available: {module_name} cannot be imported ({type(error).__name__}: {error})"
        ) from error
    function = getattr(module, function_name, None)
    if function is None:
        raise _CommandUnavailable(f"'{command}' is not available: {module_name} has no {function_name}()")
    return function


def _run_hook(command: Sequence[str], flags_module: str, add_name: str, check_name: str | None, run_module: str,
              run_name: str, help_text: str, rest: Sequence[str]) -> int:  # fmt: skip
    """Builds the hooked command's real parser, parses `rest` with it, checks the values, and runs it.

    The module that runs the command is imported only after the flags are parsed and checked, so a
    flags module free of TensorFlow refuses a bad value before TensorFlow loads.
    """
    name = " ".join(command)
    add = _hook_function(flags_module, add_name, name)
    parser = argparse.ArgumentParser(prog=f"nlp-lstm {name}", description=help_text)
    add(parser)
    args = parser.parse_args(list(rest))
    args.command_line = user_command(["nlp-lstm", *command, *rest])
    if check_name is not None:
        _hook_function(flags_module, check_name, name)(args)
    run = _hook_function(run_module, run_name, name)
    return int(run(args) or 0)


def _add_hooks(groups: dict[str, Any]) -> None:
    for hook in NEXTWORD_HOOKS:
        command, help_text = hook[0], hook[-1]
        # add_help=False: `--help` goes, with every other flag, to the command's own parser.
        parser = groups[command[0]].add_parser(command[-1], help=help_text, add_help=False)
        parser.set_defaults(run=None, hook=hook)


def _print_help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `nlp-lstm`, with every subcommand.

    Example:

    >>> from nlp_lstm.cli import build_parser
    >>> args = build_parser().parse_args(["train", "sentiment", "--epochs", "3", "--dry-run"])
    >>> args.epochs, args.dry_run, args.out
    (3, True, None)
    """
    parser = argparse.ArgumentParser(
        prog="nlp-lstm",
        description="Train, evaluate, query and export the LSTM apps of nlp_lstm.",
    )
    parser.add_argument("--version", action="version", version=f"nlp-lstm {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help=f"show TensorFlow's start-up and C++ log lines, hidden otherwise (or set {VERBOSE_ENV}=1)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train a model (sentiment or nextword)",
                                description="Train a model.")  # fmt: skip
    train.set_defaults(run=_print_help_of(train))
    train_apps = train.add_subparsers(dest="app", metavar="APP")
    _add_train_sentiment(train_apps)
    evaluate = commands.add_parser("evaluate", help="score a trained model on the test split",
                                   description="Score a trained model on the test split.")  # fmt: skip
    evaluate.set_defaults(run=_print_help_of(evaluate))
    evaluate_apps = evaluate.add_subparsers(dest="app", metavar="APP")
    _add_evaluate_sentiment(evaluate_apps)
    _add_predict(commands)
    _add_export(commands)
    _add_hooks({"train": train_apps, "evaluate": evaluate_apps, "prompt": commands})
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OSError, _CommandUnavailable]
    for module_name, name in (
        ("nlp_lstm.data_config", "DataError"), ("nlp_lstm.training", "ModelFolderError"),
        ("nlp_lstm.distribute", "StrategyError"),
    ):  # fmt: skip
        module = sys.modules.get(module_name)  # imported if the command got far enough to raise it
        if module is not None:
            types.append(getattr(module, name))
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    """Runs `nlp-lstm` with `argv` (default: the command line); returns the exit status.

    Example:

    >>> from nlp_lstm.cli import main
    >>> main(["export", "--model", "/no/such/folder", "--out", "/tmp/x"])  # prints why on stderr
    2
    """
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    hook = getattr(args, "hook", None)
    if rest and hook is None:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if hook is None and getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    args.command_line = user_command(["nlp-lstm", *(sys.argv[1:] if argv is None else argv)])
    unquiet = quiet_tensorflow(args.verbose)  # TensorFlow loads later, if at all: after the values are checked
    try:
        if hook is not None:
            return _run_hook(*hook, rest=rest)
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("nlp-lstm: interrupted", file=sys.stderr)
        return 130
    except TrainingDiverged as error:  # not the user's typing: exit 1, with what to do
        print(f"nlp-lstm: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if not isinstance(error, _user_error_types()):
            raise
        print(f"nlp-lstm: error: {error}", file=sys.stderr)
        return 2
    finally:
        unquiet()
        unlock_all()  # a command run in-process (tests, notebooks) leaves no folder locked


if __name__ == "__main__":
    sys.exit(main())
