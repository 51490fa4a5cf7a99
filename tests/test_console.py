"""Tests of the quiet console (nlp_lstm.console): TensorFlow's start-up lines dropped, every other line kept."""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_lstm import console
from nlp_lstm.console import filtered_stderr, is_noise

# Seen on a machine without a GPU (TensorFlow 2.21), as printed.
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796405207.855790   16768 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. To turn "
    "them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796405207.857455   16768 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "I0000 00:00:1796405207.937606   16768 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX512_FP16 AVX_VNNI AMX_TILE "
    "AMX_INT8 AMX_BF16 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1796405219.001272   16835 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)",
]
KEPT = [
    "W0000 00:00:1796405207.857455   16768 bfc_allocator.cc:47] Allocator ran out of memory",
    "I0000 00:00:1796405207.857455   16768 cudart_stub.cc:31] Could not find cuda drivers on your machine, and more",
    "warning: To enable the following instructions: AVX2, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
    "nlp-lstm: error: /no/such/folder does not exist",
    "",
]
GLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\]", re.MULTILINE)


def test_doctests():
    assert doctest.testmod(console).failed == 0


@pytest.mark.parametrize("line", NOISE)
def test_known_lines_are_noise(line):
    assert is_noise(line)


@pytest.mark.parametrize("line", KEPT)
def test_other_lines_are_not(line):
    assert not is_noise(line)


def test_filter_drops_known_lines_on_fd_2_and_passes_every_other(capfd):
    # Written to the descriptor, as C++ does (pytest points sys.stderr elsewhere, so print would bypass it).
    with filtered_stderr():
        os.write(2, ("\n".join([NOISE[0], KEPT[0], NOISE[2]]) + "\n").encode())
        os.write(2, f"{NOISE[3]}\n{NOISE[4]}\nno newline at the end".encode())
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == f"{KEPT[0]}\nno newline at the end" + "after\n"


def test_filter_passes_bytes_that_are_not_utf8_as_they_are(capfdbinary):
    with filtered_stderr():
        os.write(2, b"caf\xe9\n")
    assert capfdbinary.readouterr().err == b"caf\xe9\n"


def nlp_lstm_command(*argv: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", console.VERBOSE_ENV)}
    command = Path(sys.executable).parent / "nlp-lstm"
    return subprocess.run([str(command), *argv], capture_output=True, text=True, timeout=300, env={**clean, **env})


def test_a_real_command_prints_no_tensorflow_start_up_lines(tiny_aclimdb):
    result = nlp_lstm_command("predict", "--dry-run", "--data", str(tiny_aclimdb), "A wonderful film.")
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if is_noise(line)], result.stderr
    assert not GLOG_LINE.search(result.stderr), result.stderr  # nor any later C++ log line
    assert result.stderr.startswith("dry run: training a tiny model in "), result.stderr  # our lines still show
    assert result.stdout.count("\n") == 1


def test_verbose_brings_them_back(tmp_path):
    # A cheap command that still imports TensorFlow (to read the model folder) and fails.
    argv = ["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "export")]
    quiet = nlp_lstm_command(*argv)
    assert quiet.returncode == 2 and quiet.stderr.startswith("nlp-lstm: error: "), quiet.stderr
    assert quiet.stderr.count("\n") == 1, quiet.stderr
    for loud in (nlp_lstm_command("--verbose", *argv), nlp_lstm_command(*argv, NLP_LSTM_VERBOSE="1")):
        assert loud.returncode == 2 and loud.stderr.splitlines()[-1] == quiet.stderr.strip()
        if not any(is_noise(line) for line in loud.stderr.splitlines()):
            pytest.skip("TensorFlow printed no start-up lines on this machine")
