"""nlp_lstm.loops: the layer's loop is chosen by measuring where it is traced, cached, and can be pinned.

The probe's timings are replaced by fixed ones where a test needs a known winner; one test runs the
real probe. Exactness of each variant is tests/test_layers.py's (every test there runs both, forced).
"""

import doctest
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlp_lstm import loops
from nlp_lstm.layers import LSTM

B, T, D, U = 3, 5, 4, 6


class _Probes(list):
    """The probes' arguments, in order; `timings` is what each answers."""

    timings: dict


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache file and no choice made yet in this process; records each probe's arguments and
    answers with fixed timings in which `cell` wins."""
    monkeypatch.setenv(loops.CACHE_ENV, str(tmp_path / "loops.json"))
    monkeypatch.delenv(loops.LOOP_ENV, raising=False)
    monkeypatch.setattr(loops, "_chosen", {})
    probes = _Probes()

    def fake_probe(units, input_dim, steps, batch, dtype, training, xla, return_sequences=True, masked=False):
        probes.append(dict(units=units, input_dim=input_dim, steps=steps, batch=batch, dtype=dtype,
                           training=training, xla=xla, masked=masked))  # fmt: skip
        return dict(probes.timings)

    probes.timings = {"hoisted": 0.002, "cell": 0.001}

    monkeypatch.setattr(loops, "probe", fake_probe)
    return probes


def traced_choice(training=False, jit=False, **shape):
    """What `choose` answers inside a tf.function (compiled by XLA or not)."""
    shape = {"units": U, "input_dim": D, "steps": T, "batch": B, "dtype": "float32", **shape}
    answer = []

    @tf.function(jit_compile=jit, autograph=False)
    def trace():
        answer.append(loops.choose(training=training, **shape))
        return tf.constant(0.0)

    trace()
    return answer[0]


def test_the_hoisted_loop_must_win_clearly_and_a_cached_choice_is_decided_again(fresh, tmp_path, monkeypatch):
    fresh.timings = {"hoisted": 0.0090, "cell": 0.0100}  # 10% faster: chosen
    assert traced_choice() == "hoisted"
    fresh.timings = {"hoisted": 0.0098, "cell": 0.0100}  # 2%: within the probe's noise, the cell loop
    assert traced_choice(units=U + 1) == "cell"
    # A cache written under another rule keeps its timings; the choice is made again from them.
    path = tmp_path / "loops.json"
    cache = json.loads(path.read_text())
    for record in next(iter(cache.values())).values():
        record["loop"], record["seconds"] = "hoisted", {"hoisted": 0.0099, "cell": 0.0100}
    path.write_text(json.dumps(cache))
    monkeypatch.setattr(loops, "_chosen", {})
    assert traced_choice() == "cell" and traced_choice(units=U + 1) == "cell"
    assert len(fresh) == 2  # read, not measured again


def test_eager_calls_take_the_hoisted_loop_without_measuring(fresh):
    assert loops.choose(U, D, T, B, "float32", training=True) == "hoisted"
    assert fresh == []


def test_a_trace_measures_once_keeps_the_faster_and_caches_it(fresh, tmp_path, monkeypatch):
    assert traced_choice() == "cell"
    assert traced_choice() == "cell"
    assert len(fresh) == 1 and fresh[0]["xla"] is False and fresh[0]["training"] is False
    cache = json.loads((tmp_path / "loops.json").read_text())
    (machine,) = cache.values()
    (record,) = machine.values()
    assert record["loop"] == "cell" and record["seconds"] == {"hoisted": 0.002, "cell": 0.001}
    # A new process (nothing in memory) reads the file and does not measure again ...
    monkeypatch.setattr(loops, "_chosen", {})
    assert traced_choice() == "cell" and len(fresh) == 1
    # ... unless it runs on another machine or TensorFlow.
    monkeypatch.setattr(loops, "_chosen", {})
    monkeypatch.setattr(loops, "_fingerprint", lambda: "another machine")
    assert traced_choice() == "cell" and len(fresh) == 2
    assert len(json.loads((tmp_path / "loops.json").read_text())) == 2


def test_the_key_tells_training_xla_and_shape_apart(fresh):
    traced_choice()
    traced_choice(training=True)
    traced_choice(jit=True)
    traced_choice(steps=None, batch=None)
    traced_choice(units=U + 1)
    assert [(p["training"], p["xla"]) for p in fresh] == [(False, False), (True, False), (False, True)] + [
        (False, False)
    ] * 2
    assert (fresh[3]["steps"], fresh[3]["batch"]) == (loops.PROBE_STEPS, loops.PROBE_BATCH)


@pytest.mark.parametrize("jit", [False, True])
def test_compiled_models_ask_for_their_own_xla_setting(fresh, jit):
    """Keras's train and predict functions trace the layer inside tf.function(jit_compile=...)."""
    inputs = keras.Input((T,), dtype="int32")
    outputs = keras.layers.Dense(1)(LSTM(U)(keras.layers.Embedding(20, D)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse", jit_compile=jit)
    assert fresh == []  # building the model traces for shapes only: nothing measured
    ids = np.ones((B, T), "int32")
    model.train_on_batch(ids, np.zeros((B, 1), "float32"))
    model.predict_on_batch(ids)
    assert [(p["training"], p["xla"]) for p in fresh] == [(True, jit), (False, jit)]
    assert fresh[0]["units"] == U and fresh[0]["input_dim"] == D and fresh[0]["steps"] == T


def test_a_corrupt_cache_is_measured_over_and_rewritten(fresh, tmp_path):
    (tmp_path / "loops.json").write_bytes(b"\xff{not json")
    assert traced_choice() == "cell" and len(fresh) == 1
    assert json.loads((tmp_path / "loops.json").read_text())


def test_an_unwritable_cache_still_chooses(fresh, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(loops.CACHE_ENV, str(blocker / "loops.json"))  # a folder that is a file
    assert traced_choice() == "cell"
    assert "cannot keep the LSTM loop choice" in caplog.text


def test_the_environment_and_forced_pin_the_loop(fresh, monkeypatch):
    monkeypatch.setenv(loops.LOOP_ENV, "hoisted")
    assert traced_choice() == "hoisted"
    with loops.forced("cell"):
        assert traced_choice() == "cell"
    assert fresh == []
    monkeypatch.setenv(loops.LOOP_ENV, "fastest")
    with pytest.raises(ValueError, match="NLP_LSTM_LOOP must be auto, hoisted or cell"):
        traced_choice()
    with pytest.raises(ValueError, match="loop must be one of"):
        loops.forced("fastest").__enter__()


def test_the_real_probe_times_both_variants(monkeypatch):
    for training in (False, True):
        seconds = loops.probe(U, D, T, B, "float32", training=training, xla=False, masked=training)
        assert set(seconds) == set(loops.VARIANTS) and all(s > 0 for s in seconds.values())


def test_use_cudnn_is_kept_and_checked_as_keras_does():
    for value in ("auto", True, False):
        assert LSTM(U, use_cudnn=value).use_cudnn == keras.layers.LSTM(U, use_cudnn=value).use_cudnn == value
    for layer_class in (LSTM, keras.layers.LSTM):
        with pytest.raises(ValueError, match="use_cudnn"):
            layer_class(U, use_cudnn="yes")
    both = keras.layers.Bidirectional(LSTM(U, use_cudnn=False))
    assert both.forward_layer.use_cudnn is False and both.backward_layer.use_cudnn is False
    # Not saved, as keras.layers.LSTM does not save it.
    assert ("use_cudnn" in LSTM(U).get_config()) == ("use_cudnn" in keras.layers.LSTM(U).get_config())


def test_a_probe_that_fails_falls_back_to_the_cell_loop_and_is_not_kept(fresh, tmp_path, monkeypatch, caplog):
    def failing_probe(*args, **kwargs):
        raise MemoryError("out of memory at the stand-in size")

    monkeypatch.setattr(loops, "probe", failing_probe)
    assert traced_choice() == "cell"
    assert "measuring the LSTM loops" in caplog.text and "out of memory" in caplog.text
    assert not (tmp_path / "loops.json").exists()  # measured again next time


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_real_probe_runs_inside_a_compiled_trace(tmp_path, monkeypatch, dtype):
    """No fake: the probe's thread runs while a tf.function(jit_compile=True) traces, and keeps its timings."""
    monkeypatch.setenv(loops.CACHE_ENV, str(tmp_path / "loops.json"))
    monkeypatch.delenv(loops.LOOP_ENV, raising=False)
    monkeypatch.setattr(loops, "_chosen", {})
    monkeypatch.setattr(loops, "PROBE_ROUNDS", 1)
    assert traced_choice(training=True, jit=True, dtype=dtype) in loops.VARIANTS
    (machine,) = json.loads((tmp_path / "loops.json").read_text()).values()
    ((key, record),) = machine.items()
    assert f"dtype={dtype}" in key and "xla=True" in key and "training=True" in key
    assert record["loop"] == loops.decide(record["seconds"])


def test_a_bad_loop_in_the_environment_is_one_line_before_anything_runs(monkeypatch, capsys):
    from nlp_lstm.cli import main

    monkeypatch.setenv(loops.LOOP_ENV, "Cell")
    assert main(["export", "--model", "/no/such/folder", "--out", "/tmp/never"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NLP_LSTM_LOOP must be auto, hoisted or cell, got 'Cell'" in err


def test_docstring_example_runs():
    result = doctest.testmod(loops, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_the_machine_is_named_without_and_with_tensorflow():
    from nlp_lstm import machine

    assert doctest.testmod(machine).failed == 0
    line = machine.cpu_line()
    assert line.startswith(machine.cpu_model()) and f"{machine.cpus_usable()} cores" in line
    assert all(name in line for name in machine.vector_extensions())
    assert machine.describe().startswith(line)
