"""The next-word app's commands: `train nextword`, `evaluate nextword` and `prompt`.

Each `add_*` adds a command's parser, its flags' defaults read from `NextWordConfig` and the other
configs; each `run_*` builds the configs (a bad value exits with status 2 and one line, before
TensorFlow loads), then imports the app and runs it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import replace
from typing import Any

from nlp_lstm.checks import (
    MAX_MORE_WORDS,
    MAX_SUGGESTIONS,
    SEED_LIMIT,
    int_in,
    non_negative_int,
    positive_int,
    positive_number,
    usage_error,
)
from nlp_lstm.cli.common import add_precision_argument, fraction, note_precision
from nlp_lstm.data_config import CorpusConfig
from nlp_lstm.distribute import StrategyError, add_strategy_arguments, make_strategy, role_of, strategy_config_from_args
from nlp_lstm.nextword.config import (
    DEFAULT_MAX_TRAIN_MINUTES,
    DEFAULT_MODEL_DIR,
    DEFAULT_TEST_TEXTS,
    NextWordConfig,
    check_corpus_files,
    dry_run_config,
    max_train_minutes,
)


def add_commands(train_apps: Any, evaluate_apps: Any, commands: Any) -> None:
    """Adds `train nextword`, `evaluate nextword` and `prompt` to the subparsers of `nlp-lstm`."""
    parser = train_apps.add_parser(
        "nextword", help="train the next-word language model",
        description="Trains the word-level LSTM language model on IMDB's train and unlabelled reviews (or "
        "--corpus files); rerun the same command after an interruption to resume.",
    )  # fmt: skip
    add_train_arguments(parser)
    parser.set_defaults(run=run_train)
    parser = evaluate_apps.add_parser(
        "nextword", help="score the next-word model on held-out texts",
        description="Perplexity, top-1 and top-3 on held-out test texts, beside a Kneser-Ney trigram.",
    )  # fmt: skip
    add_evaluate_arguments(parser)
    parser.set_defaults(run=run_evaluate)
    parser = commands.add_parser(
        "prompt", help="suggest next words, interactively",
        description="Next-word suggestions as you type (a terminal), or one prompt per line (a pipe).",
    )  # fmt: skip
    add_prompt_arguments(parser)
    parser.set_defaults(run=run_prompt)


def _minutes(text: str) -> float:
    """A positive number of minutes, or 'none' for no limit (returned as math.inf)."""
    if text.strip().lower() == "none":
        return math.inf
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be > 0 or 'none', got {text}")
    return value


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --corpus, --limit: where the text comes from."""
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="IMDB reviews: an extracted aclImdb folder or a .tar.gz of it (default: "
                        "tensorflow-datasets' imdb_reviews)")  # fmt: skip
    parser.add_argument("--corpus", metavar="FILE", nargs="+", default=None,
                        help="train on your own UTF-8 text files instead of IMDB (paragraphs are documents; "
                        "bytes that are not UTF-8 are replaced and counted)")  # fmt: skip
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="read at most this many reviews per split (or paragraphs) (default: all)",
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of `nlp-lstm train nextword` to `parser`.

    The values are checked where the configs are built (`_configs`), not here.
    """
    d = NextWordConfig()
    default = "(default: %(default)s)"
    add_corpus_arguments(parser)
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"the model folder to write (default: {DEFAULT_MODEL_DIR}; with --dry-run a "
                        f"temporary folder)")  # fmt: skip
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished model in --out (otherwise refused, so that none is lost)",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of splits, weights and order {default}")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=CorpusConfig().val_fraction,
        help=f"fraction of the labelled train reviews (or paragraphs) for validation {default}",
    )
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        default=d.max_tokens,
        help=f"vocabulary size, counting padding, [UNK] and [BOS] {default}",
    )
    parser.add_argument(
        "--embedding-dim", type=positive_int, default=d.embedding_dim, help=f"word vector size {default}"
    )
    parser.add_argument("--units", type=positive_int, default=d.units, help=f"LSTM units per layer {default}")
    parser.add_argument("--layers", type=int, choices=(1, 2), default=d.num_layers, help=f"LSTM layers {default}")
    parser.add_argument("--dropout", type=fraction, default=d.dropout, help=f"dropout between layers {default}")
    parser.add_argument(
        "--no-tie-embeddings",
        action="store_true",
        help="give the output projection its own weights (default: the embedding matrix)",
    )
    parser.add_argument(
        "--num-sampled",
        type=int,
        default=d.num_sampled,
        help=f"candidate words of the sampled-softmax loss; 0 for the full softmax {default}",
    )
    parser.add_argument("--window", type=positive_int, default=d.window, help=f"tokens per sequence {default}")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"sequences per batch {default}")
    parser.add_argument(
        "--train-tokens",
        type=positive_int,
        default=d.train_tokens,
        help=f"tokens to train on in all: the time budget {default}",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=d.epochs,
        help=f"validations (with checkpoint and curves) along the way {default}",
    )
    parser.add_argument(
        "--learning-rate", type=positive_number, default=d.learning_rate, help=f"Adam's peak rate {default}"
    )
    parser.add_argument(
        "--patience", type=int, default=d.patience, help=f"epochs without a better val loss before stopping {default}"
    )
    parser.add_argument(
        "--backup-every",
        type=positive_int,
        default=d.backup_every,
        help=f"back up the training state every this many steps {default}",
    )
    parser.add_argument(
        "--max-train-minutes",
        type=_minutes,
        default=None,
        metavar="MINUTES",
        help=f"stop after the epoch when another would take training past this many minutes; "
        f"'none' for no limit (default: {DEFAULT_MAX_TRAIN_MINUTES:g} on one machine, so that "
        f"the default run stays within the hour on a slow day; none in a multi-worker cluster)",
    )
    parser.add_argument(
        "--carry-states",
        action="store_true",
        help="rows continue each other from batch to batch and carry their states (one device)",
    )
    add_precision_argument(parser, d.precision, "the embedding lookups and the LSTMs")
    add_strategy_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="train a tiny model for one step on a handful of texts, in seconds (for CI)",
    )


def _configs(args: argparse.Namespace) -> tuple[CorpusConfig, NextWordConfig]:
    """The configs of `nlp-lstm train nextword`'s flags, checked (with the --corpus files) before TensorFlow loads.

    A bad value exits with status 2 and one line; a corpus that cannot train raises DataError.
    """
    try:
        config = NextWordConfig(
            max_tokens=args.max_tokens, embedding_dim=args.embedding_dim, units=args.units, num_layers=args.layers,
            dropout=args.dropout, tie_embeddings=not args.no_tie_embeddings, num_sampled=args.num_sampled,
            window=args.window, batch_size=args.batch_size, train_tokens=args.train_tokens, epochs=args.epochs,
            learning_rate=args.learning_rate, patience=args.patience, seed=args.seed, backup_every=args.backup_every,
            carry_states=args.carry_states, precision=args.precision,
        )  # fmt: skip
        if args.dry_run:
            config = dry_run_config(config)
        if config.carry_states and args.strategy != "default":
            raise ValueError(f"--carry-states trains on one device, not with --strategy {args.strategy}")
        corpus = CorpusConfig(
            data=args.data, files=tuple(args.corpus or ()), seed=args.seed, val_fraction=args.val_fraction,
            limit=args.limit,
        )  # fmt: skip
        if args.dry_run:  # the user's values are checked above, the dry run's below
            corpus = replace(corpus, val_fraction=max(corpus.val_fraction, 0.25), limit=corpus.limit or 16)
        strategy_config_from_args(args)  # checks --devices and --cluster-timeout
    except (ValueError, StrategyError) as error:
        raise usage_error("nlp-lstm train nextword", error) from None
    check_corpus_files(corpus, config)
    return corpus, config


def run_train(args: argparse.Namespace) -> int:
    """Runs `nlp-lstm train nextword`; prints where the model went and its validation perplexity."""
    corpus, config = _configs(args)
    note_precision(config.precision)
    strategy = make_strategy(strategy_config_from_args(args))  # first: a cluster forms before TensorFlow runs
    out = args.out or (tempfile.mkdtemp(prefix="nlp-lstm-dry-run-") if args.dry_run else DEFAULT_MODEL_DIR)
    from nlp_lstm.nextword.train import nextword_fit_config, train_nextword

    limit = max_train_minutes(args.max_train_minutes, role_of(strategy).workers)
    fit_config = nextword_fit_config(config, dry_run=args.dry_run, max_minutes=limit)
    metrics = train_nextword(corpus, config, out, fit_config, overwrite=args.overwrite, strategy=strategy,
                             command=getattr(args, "command_line", None))  # fmt: skip
    if "val_perplexity" not in metrics:  # a worker other than the chief: the chief reports
        print(f"worker {metrics['task']} done after {metrics['epochs']} epoch(s); the chief wrote the model")
        return 0
    print(
        f"trained {out}: val perplexity {metrics['val_perplexity']:.1f} after {metrics['train_tokens']:,} tokens "
        f"in {metrics['train_time_s'] / 60:.1f} min ({metrics['tokens_per_s']:,.0f} tokens/s)"
    )
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of `nlp-lstm evaluate nextword` to `parser`."""
    parser.add_argument("--model", metavar="DIR", default=None,
                        help=f"the model folder (default: {DEFAULT_MODEL_DIR}; with --dry-run a tiny model "
                        "trained first)")  # fmt: skip
    parser.add_argument(
        "--data", metavar="PATH", default=None, help="read IMDB from here instead of where the model was trained from"
    )
    parser.add_argument("--test-texts", type=non_negative_int, default=DEFAULT_TEST_TEXTS,
                        help="score the first this many test texts of the seeded order; 0 for all "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true", help="skip the Kneser-Ney trigram baseline")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="train a tiny model on --data for one step, then evaluate it on 4 texts (for CI)",
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Runs `nlp-lstm evaluate nextword`; prints the table and writes evaluation.json."""
    from nlp_lstm.nextword.evaluate import evaluate_nextword, format_evaluation
    from nlp_lstm.nextword.kn_trigram import KneserNeyTrigram
    from nlp_lstm.nextword.train import nextword_fit_config, train_nextword

    model_dir, test_texts = args.model, (args.test_texts or None)
    if args.dry_run:
        test_texts = 4
        if model_dir is None:
            model_dir = tempfile.mkdtemp(prefix="nlp-lstm-dry-run-")
            config = dry_run_config()
            corpus = CorpusConfig(data=args.data, val_fraction=0.25, limit=16)
            train_nextword(corpus, config, model_dir, replace(nextword_fit_config(config, dry_run=True), verbose=0))
    baseline = None if args.no_baseline else KneserNeyTrigram
    result = evaluate_nextword(model_dir or DEFAULT_MODEL_DIR, test_texts, baseline, data=args.data)
    print(format_evaluation(result))
    return 0


def add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of `nlp-lstm prompt` to `parser`."""
    parser.add_argument("--model", metavar="DIR", default=DEFAULT_MODEL_DIR,
                        help="the next-word model folder (default: %(default)s)")  # fmt: skip
    parser.add_argument("-k", "--top-k", type=int_in(1, MAX_SUGGESTIONS), default=3,
                        help="suggestions shown (default: %(default)s)")  # fmt: skip
    parser.add_argument(
        "--more",
        type=int_in(0, MAX_MORE_WORDS),
        default=0,
        metavar="N",
        help="pipe mode: also continue each prompt by N words (default: %(default)s)",
    )
    parser.add_argument(
        "--rule",
        default="greedy",
        help="how to continue: greedy, 'topk K', 'topp P', 'temp T' or 'beam B' (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int_in(0, SEED_LIMIT - 1), default=None,
                        help="seed of the sampling rules (default: none)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="pipe mode: one JSON object per line")
    parser.add_argument(
        "--dry-run", action="store_true", help="use a tiny untrained model and answer one prompt (for CI)"
    )


def run_prompt(args: argparse.Namespace) -> int:
    """Runs `nlp-lstm prompt`: interactive on a terminal, one prompt per line otherwise."""
    from nlp_lstm.nextword.prompt import (
        PromptConfig,
        TypedContext,
        load_prompt_model,
        run_interactive,
        run_pipe,
        tiny_untrained_model,
    )

    try:
        config = PromptConfig(k=args.top_k, more_words=args.more, rule=args.rule, seed=args.seed, json=args.json)
    except ValueError as error:
        raise usage_error("nlp-lstm prompt", error) from None
    decoder, tokenizer = tiny_untrained_model() if args.dry_run else load_prompt_model(args.model)
    context = TypedContext(decoder, tokenizer)
    if args.dry_run:
        return run_pipe(context, ["the movie was"], sys.stdout, replace(config, more_words=config.more_words or 3))
    if sys.stdin.isatty() and sys.stdout.isatty():
        return run_interactive(context, config)
    # Bytes that are not UTF-8 become U+FFFD rather than an exception.
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
    try:
        return run_pipe(context, stdin, sys.stdout, config)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader left; nothing more to say
        return 0
