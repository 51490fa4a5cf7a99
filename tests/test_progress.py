"""Tests of nlp_lstm.progress: a bar on a terminal, a line every 30 s otherwise, a line per epoch; fit's display."""

from __future__ import annotations

import doctest
import io
import re

import pytest
from test_training import tiny_problem

from nlp_lstm import progress
from nlp_lstm.progress import Progress, ProgressCallback, format_duration, format_rate
from nlp_lstm.training import FitConfig, fit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_doctests():
    assert doctest.testmod(progress).failed == 0


def test_a_line_every_30_s_when_not_a_terminal():
    clock, log = FakeClock(), io.StringIO()
    bar = Progress("scoring", total=100, unit="targets", stream=log, clock=clock)
    assert not bar.live
    for done in range(1, 101):  # a step a second
        clock.now += 1
        bar.update(done)
    lines = log.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["scoring"] * 3  # after 30, 60 and 90 s
    assert lines[0] == "scoring: 30/100 targets (30%), 1 targets/s, ~70 s left"
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_a_live_bar_on_a_terminal_redrawn_in_place_then_cleared():
    clock, terminal = FakeClock(), Terminal()
    bar = Progress("epoch 1/2", total=10, stream=terminal, clock=clock, rate_unit="tokens/s", units_per_step=64)
    assert bar.live
    for done in range(1, 11):
        clock.now += 0.5
        bar.update(done, "loss: 1.0000")
    bar.clear()
    text = terminal.getvalue()
    assert "\n" not in text and text.count("\r") == 11  # ten redraws and the clearing
    half = "[" + "=" * 12 + ">" + " " * 11 + "]"
    assert f"\repoch 1/2 {half} 5/10 steps (50%), 128 tokens/s, ~2 s left; loss: 1.0000\x1b[K" in text
    full = "[" + "=" * 24 + "]"
    assert text.endswith(f"{full} 10/10 steps (100%), 128 tokens/s, ~0 s left; loss: 1.0000\x1b[K\r\x1b[K")


def test_the_time_left_leaves_out_the_first_step():
    clock, log = FakeClock(), io.StringIO()
    bar = Progress("epoch 1/1", total=1000, stream=log, clock=clock)
    clock.now += 100  # tracing and compiling
    bar.update(1)
    clock.now += 30  # then 10 steps a second
    bar.update(301)
    assert log.getvalue() == "epoch 1/1: 1/1,000 steps (0%)\nepoch 1/1: 301/1,000 steps (30%), 10 steps/s, ~70 s left\n"


def drive(callback: ProgressCallback, clock: FakeClock, steps: int, step_s: float, val_steps: int = 2) -> None:
    """What Keras calls during one epoch of `steps` steps and its validation."""
    callback.on_epoch_begin(0)
    for batch in range(steps):
        clock.now += step_s
        callback.on_train_batch_end(batch, {"loss": 2.0 - batch / steps})
    callback.on_test_begin()
    for batch in range(val_steps):
        clock.now += step_s
        callback.on_test_batch_end(batch)
    callback.on_test_end()
    callback.on_epoch_end(0, {"loss": 1.5, "val_loss": 1.25, "epoch_time_s": 99.0, "learning_rate": 1e-4})


def test_callback_prints_a_line_every_30_s_and_one_per_epoch_when_not_a_terminal():
    clock, log = FakeClock(), io.StringIO()
    callback = ProgressCallback(units_per_step=320, units="tokens", validation_steps=2, stream=log, clock=clock)
    callback.set_params({"epochs": 3, "steps": 100})
    drive(callback, clock, steps=100, step_s=1.0)
    lines = log.getvalue().splitlines()
    assert len(lines) == 4, lines  # at 30, 60 and 90 s, then the epoch's
    assert lines[0] == "epoch 1/3: 30/100 steps (30%), 320 tokens/s, ~70 s left; loss: 1.7100"
    assert lines[-1] == ("epoch 1/3 - 1.7 min - 314 tokens/s - loss: 1.5000 - val_loss: 1.2500 - "
                         "learning_rate: 1.000e-04")  # fmt: skip


def test_callback_draws_a_bar_on_a_terminal():
    clock, terminal = FakeClock(), Terminal()
    callback = ProgressCallback(validation_steps=2, stream=terminal, clock=clock)
    callback.set_params({"epochs": 1, "steps": 4})
    drive(callback, clock, steps=4, step_s=1.0)
    text = terminal.getvalue()
    bar = "[" + "=" * 18 + ">" + " " * 5 + "]"
    assert f"\repoch 1/1 {bar} 3/4 steps (75%), 1 steps/s, ~1 s left; loss: 1.5000\x1b[K" in text
    assert "\repoch 1/1 validating [" + "=" * 12 + ">" + " " * 11 + "] 1/2 steps (50%)" in text
    assert text.endswith("\r\x1b[Kepoch 1/1 - 6 s - 0.667 steps/s - loss: 1.5000 - val_loss: 1.2500 - "
                         "learning_rate: 1.000e-04\n")  # fmt: skip


@pytest.mark.parametrize("verbose, lines", [(0, 0), (2, 2)])
def test_fit_shows_our_progress_or_nothing(tmp_path, capfd, verbose, lines):
    model, train, val = tiny_problem()
    fit(model, train, val, tmp_path, FitConfig(epochs=2, patience=None, tensorboard=False, verbose=verbose))
    out, err = capfd.readouterr()
    assert out.count("\n") == lines, out
    assert all(re.match(r"epoch \d/2 - \d+ s - [\d,.]+ steps/s - .*\bloss: ", line) for line in out.splitlines()), out
    assert "\r" not in out and "\x1b" not in out


def test_fit_config_checks_units_per_step():
    with pytest.raises(ValueError, match="units_per_step"):
        FitConfig(units_per_step=0)


@pytest.mark.parametrize("seconds, shown", [(0.4, "0 s"), (89, "89 s"), (90, "1.5 min"), (5400, "1.5 h")])
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


@pytest.mark.parametrize("per_s, shown", [(1 / 6, "0.167"), (1.0, "1"), (9.677, "9.68"), (99.5, "99.5"),
                                          (6095.2, "6,095")])  # fmt: skip
def test_format_rate(per_s, shown):
    assert format_rate(per_s) == shown
