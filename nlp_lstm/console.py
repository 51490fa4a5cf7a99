"""A quiet console: TensorFlow's C++ start-up lines kept off stderr, every other line let through.

On a machine without a GPU, `import tensorflow` prints (twice: it loads two libraries) lines such as

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... port.cc:153] oneDNN custom operations are on. You may see slightly different ...
    I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 00:00:... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU ...
    To enable the following instructions: AVX2 AVX512F ... rebuild TensorFlow with the appropriate compiler flags.

and its first device listing `E0000 ... cuda_platform.cc:52] failed call to cuInit: ...`. The first
four come from C++ before absl's logging starts, so `TF_CPP_MIN_LOG_LEVEL` cannot drop them, and they
go to file descriptor 2 directly, so replacing `sys.stderr` cannot either. `filtered_stderr` points
fd 2 at a pipe for a while; a thread passes each line that is not one of `KNOWN_NOISE` on to the real
stderr as it comes. `quiet_tensorflow` arranges for TensorFlow's import, and its device listing, to
run inside that window when they happen (the CLI checks a user's values before TensorFlow loads), and
sets `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it, which drops the C++ log lines printed later
(the cuInit error, "oneDNN supports DT_BOOL only on platforms with AVX-512", "The calling iterator did
not fully read the dataset being cached").

`nlp-lstm --verbose` or `NLP_LSTM_VERBOSE=1` leaves stderr and the log level alone.
This module imports no TensorFlow.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

VERBOSE_ENV = "NLP_LSTM_VERBOSE"
_GLOG = r"[IWE]\d{4} [\d:.]+ +\d+ "  # glog's prefix: severity, date, time, thread id
KNOWN_NOISE = tuple(
    re.compile(pattern)
    for pattern in (
        r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        _GLOG + r"port\.cc:\d+\] oneDNN custom operations are on\. You may see slightly different numerical "
        r"results due to floating-point round-off errors from different computation orders\. .*",
        _GLOG + r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.",
        _GLOG + r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU "
        r"instructions in performance-critical operations\.",
        r"To enable the following instructions: [A-Z0-9_, ]+, in other operations, rebuild TensorFlow with the "
        r"appropriate compiler flags\.",
        _GLOG + r"cuda_platform\.cc:\d+\] failed call to cuInit: .*",
    )
)


def is_noise(line: str) -> bool:
    """Whether `line` (without its newline) is one of TensorFlow's known start-up lines.

    Example:

    >>> from nlp_lstm.console import is_noise
    >>> is_noise("I0000 00:00:1796405207.857455   16768 cudart_stub.cc:31] Could not find cuda drivers on "
    ...          "your machine, GPU will not be used.")
    True
    >>> is_noise("W0000 00:00:1796405207.857455   16768 something.cc:12] Out of memory")
    False
    """
    return any(pattern.fullmatch(line) for pattern in KNOWN_NOISE)


def verbose_requested(flag: bool = False) -> bool:
    """Whether the user asked for TensorFlow's start-up lines: `flag` (--verbose), or NLP_LSTM_VERBOSE set and not 0."""
    return flag or os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")


@contextmanager
def filtered_stderr(drop: Callable[[str], bool] = is_noise) -> Iterator[None]:
    """Within the block, lines written to file descriptor 2 (by Python or C++) for which `drop` is true are lost.

    Every other line reaches the real stderr as soon as it is complete, in order. Where fd 2 cannot
    be redirected (closed), the block runs unfiltered.

    Example:

    >>> import os
    >>> from nlp_lstm.console import filtered_stderr
    >>> with filtered_stderr(lambda line: line.startswith("noise")):
    ...     _ = os.write(2, b"noise: dropped\\nkept\\n")  # "kept" reaches stderr
    """
    sys.stderr.flush()
    try:
        real = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, real, drop), name="filtered-stderr", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the pump reads to its end and stops
        pump.join(timeout=5)  # a child started in the block may hold the pipe open; do not wait for it
        os.close(real)


def _pump(read_end: int, real: int, drop: Callable[[str], bool]) -> None:
    """Copies lines from `read_end` to `real`, without those `drop` picks; the last, unfinished line too."""
    pending = b""
    try:
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            _write_all(real, b"".join(line + b"\n" for line in lines if not drop(line.decode("utf-8", "replace"))))
        if pending and not drop(pending.decode("utf-8", "replace")):
            _write_all(real, pending)
    finally:
        os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader, then lists its devices, inside `filtered_stderr`."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # as if imported plainly
        with filtered_stderr():
            self.loader.exec_module(module)
            try:
                module.config.list_physical_devices()  # CUDA's first call, and its cuInit error, happen here
            except Exception:  # noqa: BLE001  a broken device setup is reported by the first use that needs it
                pass


class _QuietImportFinder(importlib.abc.MetaPathFinder):
    """Hands the first import of `tensorflow` to `_QuietLoader`, then steps aside."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "tensorflow":
            return None
        _remove_finder()
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _remove_finder() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _QuietImportFinder)]


def quiet_tensorflow(verbose: bool = False) -> Callable[[], None]:
    """Makes TensorFlow start quietly in this process, whenever it is imported; returns the undo.

    Sets `TF_CPP_MIN_LOG_LEVEL=3` (C++ logs: fatal only) unless the user set it, and filters the known
    start-up lines (`KNOWN_NOISE`) out of fd 2 during the import of `tensorflow` (which importing
    Keras does) and its first device listing. Nothing is done with `verbose_requested(verbose)`, or
    when TensorFlow is already imported (too late). The undo stops a later import from being filtered.

    Example:

    >>> from nlp_lstm.console import quiet_tensorflow
    >>> undo = quiet_tensorflow(verbose=True)  # --verbose: stderr and the log level stay as they are
    >>> undo()
    """
    if verbose_requested(verbose) or "tensorflow" in sys.modules:
        return lambda: None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _remove_finder()
    sys.meta_path.insert(0, _QuietImportFinder())
    return _remove_finder
