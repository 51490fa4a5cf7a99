"""What every command of `nlp-lstm` shares: a few flag types and flags, and the dry run's sizes."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from nlp_lstm.checks import PRECISIONS

DRY_RUN_LIMIT = 16  # reviews per split in a dry run


class OneLineParser(argparse.ArgumentParser):
    r"""An ArgumentParser whose refusals are one line on stderr, exit status 2, without the usage block.

    Its subcommands' parsers are of this class too (argparse makes them of the parent's class).

    Example:

    >>> import contextlib, io
    >>> from nlp_lstm.cli.common import OneLineParser
    >>> parser = OneLineParser(prog="tool")
    >>> _ = parser.add_argument("--n", type=int)
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     try:
    ...         parser.parse_args(["--n", "x"])
    ...     except SystemExit as exit_:
    ...         print(exit_.code)
    2
    >>> err.getvalue()
    "tool: error: argument --n: invalid int value: 'x' (see tool --help)\n"
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fraction(text: str) -> float:
    """A number in [0, 1) (argparse type).

    Example:

    >>> from nlp_lstm.cli.common import fraction
    >>> fraction("0.25")
    0.25
    """
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_data_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """--data: an aclImdb folder or archive, else tensorflow-datasets' imdb_reviews."""
    parser.add_argument(
        "--data", metavar="PATH", default=None,
        help=f"{what}: an extracted aclImdb folder or a .tar.gz of it (default: tensorflow-datasets' "
        f"imdb_reviews, downloaded on first use)",
    )  # fmt: skip


def add_dry_run_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """--dry-run: the same code on a handful of examples and a tiny model, in seconds (for CI)."""
    parser.add_argument("--dry-run", action="store_true", help=f"{what}, in seconds (for CI)")


def add_precision_argument(parser: argparse.ArgumentParser, default: str, what: str) -> None:
    """--precision: float32, or mixed_bfloat16 for `what` (the heads and the loss stay float32)."""
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=default,
        help=f"mixed_bfloat16: {what} compute in bfloat16, weights and heads stay float32; pays on a CPU "
        f"with BF16 instructions (docs/benchmarks.md) (default: {default})",
    )  # fmt: skip


def note_precision(precision: str) -> None:
    """Says on stderr when bfloat16 is asked for on a CPU without BF16 instructions, where it is emulated."""
    from nlp_lstm.machine import vector_extensions

    if precision == "mixed_bfloat16" and not {"avx512_bf16", "amx_bf16"} & set(vector_extensions()):
        print("note: this CPU has no BF16 instructions (AVX-512 BF16, AMX): unless a GPU trains, "
              "--precision mixed_bfloat16 runs slower than float32", file=sys.stderr)  # fmt: skip
