"""Test-only fault points: a process that reaches the point named in NLP_LSTM_FAULT kills itself.

Tests of resume and of `--overwrite` must stop a training at an exact place (after a step backup,
before an epoch's first backup, inside the end-of-epoch save), every time, instead of racing a timer
with `kill -9`. The code calls `reached("<point>")` at those places; it costs one dictionary lookup
when the variable is unset, which it always is outside the tests.

    NLP_LSTM_FAULT=<point>        SIGKILL the first time <point> is reached
    NLP_LSTM_FAULT=<point>#<n>    ... the n-th time
    NLP_LSTM_FAULT=wait@<point>   at <point>, write the file $NLP_LSTM_FAULT_GATE.waiting and wait
                                  until the file $NLP_LSTM_FAULT_GATE exists, then go on

Points: "step:<epoch>:<batch>" (a training batch has ended, before any backup of it; both 0-based),
"step-backup" (a backup within an epoch has been written), "model-save" (the best model is written
to its temporary file, not yet renamed over model.keras).

Example:

>>> import os
>>> from nlp_lstm.faults import reached
>>> os.environ.pop("NLP_LSTM_FAULT", None) and None
>>> reached("model-save")  # nothing is set: returns at once
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "NLP_LSTM_FAULT"
GATE_ENV = "NLP_LSTM_FAULT_GATE"

_counts: dict[str, int] = {}


def armed() -> bool:
    """Whether a fault point is named (callers on hot paths check this before naming their point)."""
    return bool(os.environ.get(ENV))


def reached(point: str) -> None:
    """Kills the process (or waits at the gate) if NLP_LSTM_FAULT names `point`; otherwise returns."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    wait = spec.startswith("wait@")
    name, _, nth = spec.removeprefix("wait@").partition("#")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] != int(nth or 1):
        return
    if wait:
        gate = Path(os.environ[GATE_ENV])
        Path(f"{gate}.waiting").write_text(str(os.getpid()))
        while not gate.exists():
            time.sleep(0.05)
        return
    os.kill(os.getpid(), signal.SIGKILL)
