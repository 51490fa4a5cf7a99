"""The `nlp-lstm` command: one argparse tree, a subcommand per job (spaCy / fairseq style).

    nlp-lstm train sentiment [--data PATH] [--out DIR] [--epochs N] [--seed S] [--dry-run] ...
    nlp-lstm evaluate sentiment [--model DIR] [--data PATH] [--dry-run]
    nlp-lstm predict [--model DIR] [--dry-run] "text" ...      (no text: one per line from stdin)
    nlp-lstm explain [--model DIR] [--json] "text"             (each word's part in the verdict)
    nlp-lstm train nextword [--data PATH | --corpus FILE ...] [--out DIR] [--dry-run] ...
    nlp-lstm evaluate nextword [--model DIR] [--dry-run]
    nlp-lstm prompt [--model DIR] [-k K] [--more N] [--rule RULE]
    nlp-lstm export [--model DIR] --out EXPORT_DIR [--dry-run]  (sentiment or nextword, by config.json)
    nlp-lstm serve [--sentiment DIR] [--nextword DIR] [--host H] [--port P]   (TF Serving's REST API)

The commands live by app (`nlp_lstm.cli.sentiment`, `nlp_lstm.cli.nextword`, `nlp_lstm.cli.export`);
each flag's default is read from the app's config dataclass. This package only parses arguments,
builds configs and calls the apps; TensorFlow is imported inside the commands, after every value is
checked, so `--help` and a bad value answer in a second. TensorFlow's C++ start-up lines are kept off
stderr (`nlp_lstm.console`) unless `nlp-lstm --verbose` or NLP_LSTM_VERBOSE=1 asks for them.

One error policy, for every command: a bad value (argparse's checks, through `OneLineParser`, or a
config's, raised as `usage_error`) prints one `error:` line and exits with status 2; an error the user can
fix later (bad data, a bad model folder, an unwritable folder: DataError, ModelFolderError,
StrategyError, OSError) prints one line and exits with status 2; a training run that diverged exits
with 1, an interrupt with 130; success is 0.

`--dry-run` on every command runs the same code on a handful of examples and a tiny model, in
seconds, for CI: `train` writes to a temporary folder unless `--out` is given; `evaluate`,
`predict` and `export` without `--model` first train such a tiny model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from nlp_lstm._version import __version__
from nlp_lstm.checks import pinned_loop
from nlp_lstm.cli import export, nextword, sentiment, serve
from nlp_lstm.cli.common import OneLineParser
from nlp_lstm.console import VERBOSE_ENV, quiet_tensorflow
from nlp_lstm.data_config import DataError
from nlp_lstm.distribute import StrategyError
from nlp_lstm.run_folder import ModelFolderError, TrainingDiverged, unlock_all, user_command

# Errors a user can fix: one line on stderr, exit status 2.
USER_ERRORS = (DataError, ModelFolderError, StrategyError, OSError)


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
    parser = OneLineParser(
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
    sentiment.add_train_command(train_apps)
    evaluate = commands.add_parser("evaluate", help="score a trained model on the test split",
                                   description="Score a trained model on the test split.")  # fmt: skip
    evaluate.set_defaults(run=_print_help_of(evaluate))
    evaluate_apps = evaluate.add_subparsers(dest="app", metavar="APP")
    sentiment.add_evaluate_command(evaluate_apps)
    nextword.add_commands(train_apps, evaluate_apps, commands)
    sentiment.add_predict_command(commands)
    sentiment.add_explain_command(commands)
    export.add_command(commands)
    serve.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs `nlp-lstm` with `argv` (default: the command line); returns the exit status.

    Example:

    >>> from nlp_lstm.cli import main
    >>> main(["export", "--model", "/no/such/folder", "--out", "/tmp/x"])  # prints why on stderr
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    args.command_line = user_command(["nlp-lstm", *(sys.argv[1:] if argv is None else argv)])
    try:
        pinned_loop()  # NLP_LSTM_LOOP, read when a layer is first traced: checked now, not minutes in
    except ValueError as error:
        print(f"nlp-lstm: error: {error}", file=sys.stderr)
        return 2
    unquiet = quiet_tensorflow(args.verbose)  # TensorFlow loads later, if at all: after the values are checked
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("nlp-lstm: interrupted", file=sys.stderr)
        return 130
    except TrainingDiverged as error:  # not the user's typing: exit 1, with what to do
        print(f"nlp-lstm: error: {error}", file=sys.stderr)
        return 1
    except USER_ERRORS as error:
        print(f"nlp-lstm: error: {error}", file=sys.stderr)
        return 2
    finally:
        unquiet()
        unlock_all()  # a command run in-process (tests, notebooks) leaves no folder locked
