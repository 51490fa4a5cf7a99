"""The `nlp-lstm` command: one entry point, a subcommand per job (spaCy / fairseq style).

Each app module adds its subcommands through a `register(subparsers)` function, so this file only
wires them together; the work itself lives in the importable package.
"""

from __future__ import annotations

import argparse
import sys

from nlp_lstm import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `nlp-lstm`, with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="nlp-lstm",
        description="Train, evaluate, query and export the LSTM apps of nlp_lstm.",
    )
    parser.add_argument("--version", action="version", version=f"nlp-lstm {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs `nlp-lstm` with `argv` (default: the command line); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
