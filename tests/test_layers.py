"""nlp_lstm.layers.LSTM against keras.layers.LSTM and against RNN(LSTMCell): outputs and gradients.

Every test runs once with each loop variant forced (`nlp_lstm.loops.VARIANTS`), whatever this machine
would choose.
"""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

import nlp_lstm.layers
from nlp_lstm import loops
from nlp_lstm.cell import LSTMCell
from nlp_lstm.layers import LSTM
from tests.test_cell import (
    MODES,
    B,
    D,
    T,
    U,
    V,
    assert_same,
    check_mixed_precision,
    check_xla,
    padded_ids,
    twin_models,
)  # fmt: skip


@pytest.fixture(autouse=True, params=loops.VARIANTS)
def loop(request):
    with loops.forced(request.param):
        yield request.param


def ours(**kwargs):
    return LSTM(U, **kwargs)


def gradients(model, data, training=True):
    """Gradients of a fixed nonlinear function of every output w.r.t. the weights and the input."""
    data = tf.convert_to_tensor(data)
    with tf.GradientTape() as tape:
        tape.watch(data)
        outputs = model(data, training=training)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        loss = sum(tf.reduce_sum(tf.sin(o * (k + 1.3))) for k, o in enumerate(outputs))
    weights = model.trainable_weights
    grads = tape.gradient(loss, weights + ([data] if data.dtype.is_floating else []))
    return [np.asarray(tf.convert_to_tensor(g)) for g in grads]  # embedding grads are IndexedSlices


@pytest.mark.parametrize("kwargs", MODES)
def test_matches_keras_lstm_outputs_and_gradients(kwargs):
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    ref, mine = twin_models(ours, masked=False, **kwargs)
    assert_same(ref(x), mine(x))
    assert_same(gradients(ref, x), gradients(mine, x))


@pytest.mark.parametrize("pre", [False, True], ids=["post-padded", "pre-padded"])
@pytest.mark.parametrize(
    "kwargs",
    [{"return_sequences": True, "return_state": True}, {"go_backwards": True, "return_sequences": True}, {}],
)
def test_matches_keras_lstm_with_mask(pre, kwargs):
    ids = padded_ids(pre)
    ref, mine = twin_models(ours, masked=True, **kwargs)
    assert_same(ref(ids), mine(ids))
    assert_same(gradients(ref, ids), gradients(mine, ids))


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_wide_layers_match_keras(training):
    """At 128 units, where the two loops' speeds cross on some CPUs, both stay exact."""
    x = np.random.default_rng(1).normal(size=(B, T, D)).astype("float32")
    ref = keras.layers.LSTM(128, return_sequences=True, return_state=True)
    mine = LSTM(128, return_sequences=True, return_state=True)
    ref.build(x.shape)
    mine.build(x.shape)
    mine.set_weights(ref.get_weights())
    assert_same(ref(x, training=training), mine(x, training=training))


@pytest.mark.parametrize("signature", [(B, None, D), (None, None, D), (None, T, D), (B, T, D)])
def test_traced_with_unknown_dimensions_matches_keras(signature):
    """A graph may know the batch but not the length (or neither): every step still runs."""
    x = np.random.default_rng(7).normal(size=(B, T, D)).astype("float32")
    ref, mine = keras.layers.LSTM(U, return_sequences=True), LSTM(U, return_sequences=True)
    ref.build(x.shape)
    mine.build(x.shape)
    mine.set_weights(ref.get_weights())
    traced = tf.function(lambda x: mine(x), input_signature=[tf.TensorSpec(signature, "float32")])
    assert_same(ref(x), traced(x))


def test_the_forced_loop_runs(loop, monkeypatch):
    """The layer runs the loop `choose` names (here forced), eagerly and inside a tf.function."""
    ran = []
    real_run = loops.run
    monkeypatch.setattr(loops, "run", lambda variant, *a, **k: ran.append(variant) or real_run(variant, *a, **k))
    layer = LSTM(U)
    x = tf.constant(np.random.default_rng(2).normal(size=(B, T, D)).astype("float32"))
    layer(x)
    tf.function(lambda x: layer(x, training=True))(x)
    assert ran == [loop, loop]


@pytest.mark.parametrize("pre", [False, True], ids=["post-padded", "pre-padded"])
@pytest.mark.parametrize(
    "kwargs",
    [{"return_sequences": True}, {"return_sequences": False}, {"return_sequences": True, "go_backwards": True}],
)
def test_zero_output_for_mask_matches_rnn_of_cell(pre, kwargs):
    ids = padded_ids(pre=pre)
    inputs = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(V, D, mask_zero=True)(inputs)
    plain = keras.layers.RNN(LSTMCell(U), zero_output_for_mask=True, **kwargs)
    mine = LSTM(U, zero_output_for_mask=True, **kwargs)
    plain_model, my_model = keras.Model(inputs, plain(x)), keras.Model(inputs, mine(x))
    my_model.set_weights(plain_model.get_weights())
    assert_same(plain_model(ids), my_model(ids))
    assert_same(gradients(plain_model, ids), gradients(my_model, ids))


def test_initial_state_gradients():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(B, T, D)).astype("float32"))
    h0, c0 = (tf.constant(s) for s in rng.normal(size=(2, B, U)).astype("float32"))
    ref, mine = keras.layers.LSTM(U, return_sequences=True), LSTM(U, return_sequences=True)
    ref(x), mine(x)
    mine.set_weights(ref.get_weights())
    results = []
    for layer in (ref, mine):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            out = layer(x, initial_state=[h0, c0], training=True)
            loss = tf.reduce_sum(tf.sin(out * 1.7))
        results.append([out] + tape.gradient(loss, [x, h0, c0] + layer.trainable_weights))
    assert_same(*results)


def test_dropout_matches_rnn_of_cell_with_the_same_seed():
    """Same seed, same masks: the fast loop and the cell-by-cell loop agree while training."""
    ids = padded_ids(pre=True)
    kwargs = dict(dropout=0.3, recurrent_dropout=0.25, seed=9)
    inputs = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(V, D, mask_zero=True)(inputs)
    plain = keras.layers.RNN(LSTMCell(U, **kwargs), return_sequences=True)
    mine = LSTM(U, return_sequences=True, **kwargs)
    plain_model, my_model = keras.Model(inputs, plain(x)), keras.Model(inputs, mine(x))
    my_model.set_weights(plain_model.get_weights())
    assert_same(gradients(plain_model, ids), gradients(my_model, ids))
    assert_same(plain_model(ids, training=True), my_model(ids, training=True))
    assert not np.allclose(np.asarray(my_model(ids, training=True)), np.asarray(my_model(ids)))


def test_inside_bidirectional_and_round_trip(tmp_path):
    ids = padded_ids(pre=False)
    inputs = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(V, D, mask_zero=True)(inputs)
    ref = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True))
    mine = keras.layers.Bidirectional(LSTM(U, return_sequences=True, dropout=0.2, seed=1))
    ref_model, my_model = keras.Model(inputs, ref(x)), keras.Model(inputs, mine(x))
    my_model.set_weights(ref_model.get_weights())
    assert_same(ref_model(ids), my_model(ids))
    # Dropout is off outside training; this also checks autodiff through the inference loop.
    assert_same(gradients(ref_model, ids, training=False), gradients(my_model, ids, training=False))
    path = tmp_path / "bi.keras"
    my_model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode on, no custom_objects
    assert isinstance(loaded.layers[2].forward_layer, LSTM)
    assert loaded.layers[2].forward_layer.dropout == 0.2
    np.testing.assert_array_equal(np.asarray(my_model(ids)), np.asarray(loaded(ids)))


def test_other_activations_fall_back_to_the_cell_loop():
    x = np.random.default_rng(4).normal(size=(B, T, D)).astype("float32")
    ref = keras.layers.LSTM(U, activation="relu", recurrent_activation="hard_sigmoid")
    mine = LSTM(U, activation="relu", recurrent_activation="hard_sigmoid")
    ref(x), mine(x)
    mine.set_weights(ref.get_weights())
    assert_same(ref(x), mine(x))
    assert_same(gradients(keras.Sequential([ref]), x), gradients(keras.Sequential([mine]), x))


def test_mixed_precision():
    check_mixed_precision(lambda: LSTM(U, dropout=0.1, recurrent_dropout=0.1))


def test_traces_under_xla():
    check_xla(lambda: LSTM(U))


def test_docstring_example_runs():
    result = doctest.testmod(nlp_lstm.layers, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_backward_steps_multiply_by_untransposed_kernels(loop):
    """d(h) inside the time loop is d(z) times a transposed copy of the kernel, not a MatMul with
    transpose_b, which TensorFlow's CPU kernels run up to 3x slower and autodiff of h @ R would use;
    so is d(x_t) where the input product is inside the loop."""
    layer = LSTM(U, return_sequences=True)
    x = tf.constant(np.random.default_rng(4).normal(size=(B, T, D)).astype("float32"))
    layer(x)

    @tf.function(autograph=False)
    def grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    library = grads.get_concrete_function(x).graph.as_graph_def().library.function
    bodies = [f for f in library if "while_body" in f.signature.name]
    assert any(f.signature.name.endswith("_grad") or "_grad_" in f.signature.name for f in bodies)
    products = [n for f in bodies for n in f.node_def if n.op in ("MatMul", "BatchMatMulV2")]
    # Forward h @ R; backward d(z) @ R^T and h^T @ d(z); the cell loop also x_t @ W, d(z) @ W^T, x_t^T @ d(z).
    assert len(products) >= {"hoisted": 3, "cell": 6}[loop]
    assert not [n.name for n in products if n.attr["transpose_b"].b]
    # The kernels' copies are made outside the loop: the only transposes in the loop bodies are of h
    # (and of x_t in the cell loop).
    transposes = [n for f in bodies for n in f.node_def if n.op == "Transpose"]
    assert len(transposes) == {"hoisted": 1, "cell": 2}[loop]


def test_eager_stateful_gradients_match_keras():
    """Eagerly, a stateful layer overwrites its state variables before the backward pass runs."""
    x = tf.constant(np.random.default_rng(5).normal(size=(B, T, D)).astype("float32"))
    ref = keras.layers.LSTM(U, stateful=True, return_sequences=True)
    mine = LSTM(U, stateful=True, return_sequences=True)
    ref(x)
    mine(x)
    mine.set_weights(ref.get_weights())
    grads = []
    for layer in (ref, mine):
        layer.reset_state()
        layer(x)  # the states are now non-zero, and the same for both
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(layer(x, training=True) * 1.7))
        grads.append(tape.gradient(loss, layer.trainable_weights))
    for a, b in zip(*grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_gradients_through_a_reloaded_savedmodel(tmp_path):
    """Inference traces no custom gradient, so a reloaded export can still be differentiated."""
    inputs = keras.Input((T, D))
    model = keras.Model(inputs, LSTM(U)(inputs))
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    x = tf.constant(np.random.default_rng(6).normal(size=(B, T, D)).astype("float32"))
    grads = []
    for fn in (loaded.serve, model):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(fn(x)))
        grads.append(tape.gradient(loss, x))
    np.testing.assert_allclose(np.asarray(grads[0]), np.asarray(grads[1]), atol=1e-5)
