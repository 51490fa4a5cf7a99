"""Checks of user values, shared by the config dataclasses: seeds, rates, fractions, counts.

Each raises ValueError naming the field and the value; the command line turns that into one line
and exit status 2 (`usage_error`), before TensorFlow is imported. Plain Python: no TensorFlow here.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import Any

SEED_LIMIT = 2**32  # numpy and Keras take seeds in [0, 2**32)
MAX_SUGGESTIONS = 50  # the prompt's -k / /k
MAX_MORE_WORDS = 1_000  # the prompt's --more / /more, and predict_next's n
# Keras dtype policies `train nextword` offers: its embedding lookups and LSTMs compute in bfloat16 under
# "mixed_bfloat16" (weights stay float32; the projection and the loss compute in float32). It paid for the
# next-word model (256 units) on a CPU with BF16 instructions, not for the sentiment BiLSTM (64 units):
# docs/benchmarks.md.
PRECISIONS = ("float32", "mixed_bfloat16")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_seed(name: str, value: Any) -> None:
    """A seed: an integer in [0, 2**32).

    Example:

    >>> from nlp_lstm.checks import check_seed
    >>> check_seed("seed", 7)
    >>> check_seed("seed", -1)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer in [0, 2**32), got -1
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2**32), got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """A rate, a norm, a time: a finite number > 0 (NaN and infinity are refused).

    Example:

    >>> from nlp_lstm.checks import check_positive
    >>> check_positive("learning_rate", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: learning_rate must be a finite number > 0, got nan
    """
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_rate(name: str, value: Any) -> None:
    """A dropout rate or held-out fraction that may be 0: a number in [0, 1) (NaN is refused)."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_count(name: str, value: Any, least: int = 1, none_ok: bool = False) -> None:
    """An integer >= `least` (or None, when `none_ok`)."""
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        extra = " or None" if none_ok else ""
        raise ValueError(f"{name} must be an integer >= {least}{extra}, got {value!r}")


# `NLP_LSTM_LOOP` pins the layer's time loop (`nlp_lstm.loops`); here so that the command line checks it
# before TensorFlow loads.
LOOP_ENV = "NLP_LSTM_LOOP"
LOOP_VARIANTS = ("hoisted", "cell")


def pinned_loop() -> str | None:
    """The loop `NLP_LSTM_LOOP` pins, None for none (unset, empty or "auto"); ValueError for another value."""
    pinned = os.environ.get(LOOP_ENV, "").strip()
    if not pinned or pinned == "auto":
        return None
    if pinned not in LOOP_VARIANTS:
        raise ValueError(f"{LOOP_ENV} must be auto, {' or '.join(LOOP_VARIANTS)}, got {pinned!r}")
    return pinned


def check_precision(value: Any) -> None:
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")


def usage_error(prog: str, error: Exception | str) -> SystemExit:
    """Prints `<prog>: error: <error>` on stderr; returns the SystemExit (status 2) to raise.

    Example:

    >>> from nlp_lstm.checks import usage_error
    >>> usage_error("nlp-lstm train sentiment", ValueError("seed must be ...")).code
    2
    """
    print(f"{prog}: error: {error}", file=sys.stderr)
    return SystemExit(2)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = float(text)
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def int_in(low: int, high: int) -> Callable[[str], int]:
    """argparse type: an integer in [low, high].

    Example:

    >>> from nlp_lstm.checks import int_in
    >>> int_in(1, 50)("7")
    7
    """

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {text}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value"
    return parse


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
