"""The machine a figure is measured on, and a loop choice is cached for: CPU, vector units, oneDNN, versions.

Speed ratios between two layers differ from one CPU to another (AVX2 against AVX-512 with BF16 and AMX;
TensorFlow's oneDNN kernels on or off), so every benchmark names these beside its figures, and
`nlp_lstm.loops` keys its measured choices by them.
"""

from __future__ import annotations

import os
import platform
from functools import cache

# The extensions that change how fast TensorFlow's CPU kernels run, as /proc/cpuinfo names them.
VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo; empty where there is none (not Linux)."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    """The CPU's model name, e.g. "Intel(R) Xeon(R) Processor"; the platform's word for it elsewhere."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def vector_extensions() -> list[str]:
    """Which of VECTOR_EXTENSIONS the CPU has (Linux; an empty list where /proc/cpuinfo is absent)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [name for name in VECTOR_EXTENSIONS if name in flags]


def cpus_usable() -> int:
    """CPU cores this process may run on (its affinity where the system says; else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def gpu_names() -> list[str]:
    """The GPUs TensorFlow sees, by device name (imports TensorFlow)."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def onednn_on() -> bool | None:
    """Whether TensorFlow runs its oneDNN CPU kernels (its default on x86 Linux; TF_ENABLE_ONEDNN_OPTS=0
    turns them off). Read from TensorFlow, not from its start-up line, which the console silences; None
    where the build cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def cpu_line() -> str:
    """The CPU in a few words, without TensorFlow: model, vector extensions, usable cores."""
    return f"{cpu_model()} ({', '.join(vector_extensions()) or 'no AVX2'}), {cpus_usable()} cores"


def describe() -> str:
    """One line for a benchmark's header.

    Example:

    >>> from nlp_lstm.machine import describe
    >>> "cores" in describe() and "oneDNN" in describe()
    True
    """
    import keras
    import tensorflow as tf

    onednn = {True: "on", False: "off", None: "unknown"}[onednn_on()]
    gpus = gpu_names()
    return (
        f"{cpu_line()}, oneDNN {onednn}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, GPUs: {', '.join(gpus) or 'none'}"
    )
