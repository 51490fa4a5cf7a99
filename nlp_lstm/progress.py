"""Progress of long work: a live bar on a terminal, a plain line every 30 s or so otherwise (logs, CI).

    Progress(what, total, unit, ...)   one loop's progress: steps done of total, a rate, time left
    ProgressCallback(...)              the Keras callback `training.fit` shows instead of Keras's own:
                                       the bar or lines within an epoch, and one line per epoch with its logs

A next-word epoch runs minutes; Keras's `verbose=2` (what a log gets) says nothing until it ends.
This module imports Keras only for the callback's base class, and no TensorFlow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import keras

BAR_WIDTH = 24
LIVE_EVERY_S = 0.2  # redraws of the bar at most this often: a step may take a millisecond


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_duration(seconds: float) -> str:
    """`seconds` as a person reads them: "42 s", "3.5 min", "2.1 h".

    Example:

    >>> from nlp_lstm.progress import format_duration
    >>> format_duration(42.2), format_duration(210), format_duration(7560)
    ('42 s', '3.5 min', '2.1 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_rate(per_s: float) -> str:
    """A rate with three significant digits, or whole with thousands separators: "0.17", "9.68", "6,095"."""
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def format_logs(logs: Mapping[str, Any]) -> str:
    """Keras's logs as "loss: 4.5123 - val_loss: 4.6001": numbers only, small ones in scientific notation."""
    parts = []
    for name, value in logs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"
            parts.append(f"{name}: {shown}")
    return " - ".join(parts)


class Progress:
    """Reports how far a loop is: redraws a bar on a terminal, prints a line every `every_s` s otherwise.

    Args:
        what: What is under way, first on each line ("epoch 2/10", "scoring").
        total: Steps in all, or None if unknown (then no bar and no time left).
        unit: What a step is, as printed after the counts ("steps", "targets").
        stream: Where to write (default: sys.stdout, read at each write).
        live: Redraw a bar in place; None: when `stream` is a terminal.
        every_s: Seconds between two plain lines (a live bar is redrawn at most every 0.2 s).
        rate_unit: The rate's label, e.g. "tokens/s"; None: `unit` per second.
        units_per_step: What one step is worth in `rate_unit` (e.g. batch size x window tokens).
        clock: Seconds, for the rate and the spacing of lines (tests pass a fake one).

    Example:

    >>> import io
    >>> from nlp_lstm.progress import Progress
    >>> now = [0.0]
    >>> log = io.StringIO()
    >>> progress = Progress("epoch 1/3", total=400, stream=log, rate_unit="tokens/s", units_per_step=640,
    ...                     clock=lambda: now[0])
    >>> now[0] = 10.0; progress.update(100)  # too soon for a line
    >>> now[0] = 31.0; progress.update(300, "loss: 4.5000")
    >>> print(log.getvalue(), end="")
    epoch 1/3: 300/400 steps (75%), 6,095 tokens/s, ~10 s left; loss: 4.5000
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "steps",
        stream: TextIO | None = None,
        live: bool | None = None,
        every_s: float = 30.0,
        rate_unit: str | None = None,
        units_per_step: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.rate_unit, self.units_per_step, self.clock = rate_unit or f"{unit}/s", units_per_step, clock
        self._stream = stream
        self.live = _is_terminal(self.stream) if live is None else live
        self.start = self.last = clock()
        self.first: tuple[int, float] | None = None  # (done, time) at the first report
        self.drawn = False  # a bar stands on the current line

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def status(self, done: int, note: str = "") -> str:
        """The counts, rate and time left after `done` steps (the text of a line, without `what`)."""
        parts = [f"{done:,}/{self.total:,} {self.unit} ({100 * done / self.total:.0f}%)" if self.total
                 else f"{done:,} {self.unit}"]  # fmt: skip
        # The rate counts from the first report on: the first step also traces and compiles, and would
        # make the time left hours at first.
        if self.first is not None and done > self.first[0]:
            rate = (done - self.first[0]) / max(self.clock() - self.first[1], 1e-9)  # steps/s
            parts.append(f"{format_rate(rate * self.units_per_step)} {self.rate_unit}")
            if self.total:
                parts.append(f"~{format_duration(max(self.total - done, 0) / rate)} left")
        return ", ".join(parts) + (f"; {note}" if note else "")

    def update(self, done: int, note: str = "") -> None:
        """Reports `done` steps: redraws the bar (at most every 0.2 s), or prints a line if `every_s` passed."""
        now = self.clock()
        if self.first is None:
            self.first = (done, now)
        if now - self.last < (LIVE_EVERY_S if self.live else self.every_s):
            return
        self.last = now
        if not self.live:
            print(f"{self.what}: {self.status(done, note)}", file=self.stream, flush=True)
            return
        bar = ""
        if self.total:
            filled = min(BAR_WIDTH, BAR_WIDTH * done // self.total)
            bar = "[" + "=" * filled + ">"[: filled < BAR_WIDTH] + " " * (BAR_WIDTH - filled - 1) + "] "
        # \r back to the line's start, \x1b[K clears what a longer bar left
        self.stream.write(f"\r{self.what} {bar}{self.status(done, note)}\x1b[K")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        """Erases the bar, so that the next line starts clean."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


class ProgressCallback(keras.callbacks.Callback):
    """Keras progress of ours: within an epoch a bar (terminal) or a line every `every_s` s, then one line per epoch.

    Args:
        live: A bar redrawn in place; None: when the stream is a terminal.
        every_s: Seconds between lines within an epoch, when not live.
        units_per_step: What one training step is worth in `units` (e.g. batch size x window for
            tokens); None: the rate is in steps/s.
        units: The name of those units ("tokens", "reviews").
        validation_steps: Batches of validation per epoch, if known (for the bar's total).
        stream: Where to write (default: sys.stdout).
        clock: Seconds (tests pass a fake one).

    The epoch line reads "epoch 2/10 - 412 s - 1,234 tokens/s - loss: 4.5123 - val_loss: 4.6001 - ...".

    Example:

    >>> import io, keras, numpy as np
    >>> from nlp_lstm.progress import ProgressCallback
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> log = io.StringIO()
    >>> _ = model.fit(np.ones((8, 2)), np.ones(8), batch_size=4, epochs=1, verbose=0,
    ...               callbacks=[ProgressCallback(stream=log)])
    >>> log.getvalue().startswith("epoch 1/1 - ")
    True
    """

    def __init__(
        self,
        live: bool | None = None,
        every_s: float = 30.0,
        units_per_step: float | None = None,
        units: str = "examples",
        validation_steps: int | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.live, self.every_s, self.validation_steps, self._stream, self.clock = (
            live, every_s, validation_steps, stream, clock
        )  # fmt: skip
        self.units_per_step = units_per_step
        self.rate_unit = f"{units}/s" if units_per_step else "steps/s"
        self.bar: Progress | None = None
        self.epoch, self.epoch_start, self.steps_done = 0, 0.0, 0

    def _progress(self, what: str, total: int | None) -> Progress:
        return Progress(what, total, stream=self._stream, live=self.live, every_s=self.every_s, clock=self.clock,
                        rate_unit=self.rate_unit, units_per_step=self.units_per_step or 1.0)  # fmt: skip

    def _what(self) -> str:
        return f"epoch {self.epoch + 1}/{self.params.get('epochs', '?')}"

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.epoch_start, self.steps_done = epoch, self.clock(), 0
        self.bar = self._progress(self._what(), self.params.get("steps"))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps_done = batch + 1
        if self.bar is not None:
            self.bar.update(batch + 1, format_logs({"loss": (logs or {}).get("loss")}))

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self.bar is not None:  # validation within fit (not a separate evaluate)
            self.bar.clear()
            self.bar = self._progress(f"{self._what()} validating", self.validation_steps)
            self.bar.rate_unit, self.bar.units_per_step = "steps/s", 1.0

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(batch + 1)

    def on_test_end(self, logs: dict | None = None) -> None:
        self.clear()  # before the other callbacks' epoch ends, which may print

    def clear(self) -> None:
        """Erases a bar left on the terminal (`fit` calls it when training ends, even by an error)."""
        if self.bar is not None:
            self.bar.clear()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.clear()
        self.bar = None
        seconds = self.clock() - self.epoch_start
        parts = [self._what(), format_duration(seconds)]
        if self.steps_done and seconds > 0:
            parts.append(f"{format_rate(self.steps_done * (self.units_per_step or 1.0) / seconds)} {self.rate_unit}")
        shown = {name: value for name, value in (logs or {}).items() if name != "epoch_time_s"}
        parts.append(format_logs(shown))
        stream = self._stream if self._stream is not None else sys.stdout
        print(" - ".join(part for part in parts if part), file=stream, flush=True)
