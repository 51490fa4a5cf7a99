"""LSTMCell against its oracle, keras.layers.LSTM with the same weights."""

import doctest

import keras
import numpy as np
import pytest

import nlp_lstm.cell
from nlp_lstm.cell import LSTMCell

B, T, D, U, V = 3, 7, 5, 4, 20
ATOL = 1e-5


def as_list(out):
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def assert_same(a, b, atol=ATOL):
    a, b = as_list(a), as_list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def padded_ids(pre: bool) -> np.ndarray:
    """Token ids with padding 0 at the end (or start) of each row; one row fully padded."""
    rng = np.random.default_rng(1)
    ids = rng.integers(1, V, (B + 1, T))
    for row, length in enumerate([T, 4, 1, 0]):
        pad = T - length
        if pre:
            ids[row, :pad] = 0
        else:
            ids[row, length:] = 0
    return ids


def twin_models(make_ours, masked: bool, **kwargs):
    """keras.layers.LSTM and our layer on the same inputs, ours given the reference's weights."""
    ref, ours = keras.layers.LSTM(U, **kwargs), make_ours(**kwargs)
    if masked:
        inputs = keras.Input((T,), dtype="int32")
        x = keras.layers.Embedding(V, D, mask_zero=True)(inputs)
    else:
        inputs = keras.Input((T, D))
        x = inputs
    ref_model, our_model = keras.Model(inputs, ref(x)), keras.Model(inputs, ours(x))
    if masked:  # share the embedding too
        our_model.layers[1].set_weights(ref_model.layers[1].get_weights())
    ours.set_weights(ref.get_weights())
    return ref_model, our_model


def rnn_of_cell(**kwargs):
    return keras.layers.RNN(LSTMCell(U), **kwargs)


MODES = [
    {},
    {"return_sequences": True},
    {"return_state": True},
    {"return_sequences": True, "return_state": True},
    {"return_sequences": True, "go_backwards": True},
]


@pytest.mark.parametrize("kwargs", MODES)
def test_cell_matches_keras_lstm(kwargs):
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    ref, ours = twin_models(rnn_of_cell, masked=False, **kwargs)
    assert_same(ref(x), ours(x))


@pytest.mark.parametrize("pre", [False, True], ids=["post-padded", "pre-padded"])
@pytest.mark.parametrize("kwargs", [{"return_sequences": True, "return_state": True}, {"go_backwards": True}])
def test_cell_matches_keras_lstm_with_mask(pre, kwargs):
    ids = padded_ids(pre)
    ref, ours = twin_models(rnn_of_cell, masked=True, **kwargs)
    assert_same(ref(ids), ours(ids))


def test_initial_state_and_weights_move_both_ways():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, T, D)).astype("float32")
    h0, c0 = rng.normal(size=(2, B, U)).astype("float32")
    ref, ours = keras.layers.LSTM(U, return_state=True), rnn_of_cell(return_state=True)
    ours(x)  # build, then copy our weights into the reference
    ref(x)
    ref.set_weights(ours.get_weights())
    assert_same(ref(x, initial_state=[h0, c0]), ours(x, initial_state=[h0, c0]))
    assert [w.name for w in ours.cell.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert [tuple(w.shape) for w in ours.cell.weights] == [(D, 4 * U), (U, 4 * U), (4 * U,)]


def test_stateful_carries_state_across_batches():
    x = np.random.default_rng(3).normal(size=(B, T, D)).astype("float32")
    inputs = keras.Input(batch_shape=(B, T, D))
    ref, ours = keras.layers.LSTM(U, stateful=True), rnn_of_cell(stateful=True)
    ref_model, our_model = keras.Model(inputs, ref(inputs)), keras.Model(inputs, ours(inputs))
    ours.set_weights(ref.get_weights())
    first, second = our_model(x), our_model(x)
    assert not np.allclose(first, second)  # the second call starts from the first's state
    assert_same([ref_model(x), ref_model(x)], [first, second])


def test_inside_bidirectional():
    ids = padded_ids(pre=False)
    inputs = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(V, D, mask_zero=True)(inputs)
    ref = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True))
    ours = keras.layers.Bidirectional(rnn_of_cell(return_sequences=True))
    ref_model, our_model = keras.Model(inputs, ref(x)), keras.Model(inputs, ours(x))
    our_model.set_weights(ref_model.get_weights())
    assert_same(ref_model(ids), our_model(ids))


def test_keras_file_round_trip(tmp_path):
    ids = padded_ids(pre=True)
    inputs = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(V, D, mask_zero=True)(inputs)
    x = keras.layers.RNN(LSTMCell(U, dropout=0.25, recurrent_dropout=0.1, seed=4))(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode on, no custom_objects
    cell = loaded.layers[2].cell
    assert isinstance(cell, LSTMCell)
    assert (cell.units, cell.dropout, cell.recurrent_dropout, cell.seed) == (U, 0.25, 0.1, 4)
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(loaded(ids)))


def constant_input_model(dropout, recurrent_dropout=0.0, seed=7):
    """An RNN whose h_t depends on x_t alone (forget gate shut, no recurrence)."""
    layer = keras.layers.RNN(
        LSTMCell(U, dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed),
        return_sequences=True,
    )
    layer.build((None, T, D))
    kernel = np.random.default_rng(5).normal(size=(D, 4 * U)).astype("float32")
    bias = np.zeros(4 * U, "float32")
    bias[U : 2 * U] = -1e4  # forget gate = 0: c_t = i_t * g_t
    layer.set_weights([kernel, np.zeros((U, 4 * U), "float32"), bias])
    return layer


def test_dropout_only_when_training_and_one_mask_per_sequence():
    x = np.ones((B, T, D), "float32")
    layer = constant_input_model(dropout=0.5)
    plain = np.asarray(constant_input_model(dropout=0.0)(x))
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), plain, atol=ATOL)
    dropped = np.asarray(layer(x, training=True))
    assert not np.allclose(dropped, plain)
    # Same input at every step and one mask for the whole sequence: the same output at every step.
    np.testing.assert_allclose(dropped, np.repeat(dropped[:, :1], T, axis=1), atol=ATOL)
    # A fresh mask for each batch.
    assert not np.allclose(dropped, np.asarray(layer(x, training=True)))


def test_dropout_is_seeded():
    x = np.random.default_rng(6).normal(size=(B, T, D)).astype("float32")
    runs = [constant_input_model(0.3, 0.3, seed=11)(x, training=True) for _ in range(2)]
    np.testing.assert_array_equal(np.asarray(runs[0]), np.asarray(runs[1]))
    other = constant_input_model(0.3, 0.3, seed=12)(x, training=True)
    assert not np.allclose(np.asarray(runs[0]), np.asarray(other))


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def tiny_classifier(layer_factory):
    inputs = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(V, D, mask_zero=True)(inputs)
    x = layer_factory()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def check_mixed_precision(layer_factory):
    ids = padded_ids(pre=False)
    reference = tiny_classifier(layer_factory)
    weights = reference.get_weights()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_classifier(layer_factory)
        model.set_weights(weights)
        rnn = model.layers[2]
        assert all(w.dtype == "float32" for w in rnn.weights)
        assert rnn.compute_dtype == "float16"
        np.testing.assert_allclose(np.asarray(model(ids)), np.asarray(reference(ids)), atol=1e-2)
        model.compile("adam", "binary_crossentropy")
        loss = model.train_on_batch(ids, np.ones((len(ids), 1), "float32"))
        assert np.isfinite(loss)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision():
    check_mixed_precision(lambda: keras.layers.RNN(LSTMCell(U, dropout=0.1, recurrent_dropout=0.1)))


def check_xla(layer_factory):
    ids = padded_ids(pre=True)
    y = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")
    models = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = tiny_classifier(layer_factory)
        model.compile("sgd", "binary_crossentropy", jit_compile=jit)
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    losses = [m.train_on_batch(ids, y) for m in models]
    np.testing.assert_allclose(losses[0], losses[1], atol=1e-5)
    np.testing.assert_allclose(models[0].predict_on_batch(ids), models[1].predict_on_batch(ids), atol=1e-5)
    assert models[1].jit_compile  # Keras would have switched XLA off for an op it cannot compile


def test_traces_under_xla():
    check_xla(rnn_of_cell)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"units": 0}, "units"),
        ({"units": -3}, "units"),
        ({"units": 2.5}, "units"),
        ({"units": 4, "dropout": 1.0}, "dropout"),
        ({"units": 4, "dropout": -0.1}, "dropout"),
        ({"units": 4, "recurrent_dropout": 1.5}, "recurrent_dropout"),
        ({"units": 4, "dropout": "lots"}, "dropout"),
    ],
)
def test_invalid_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word) as error:
        LSTMCell(**kwargs)
    bad = [v for k, v in kwargs.items() if k == word][0]
    assert repr(bad) in str(error.value)


def test_docstring_example_runs():
    result = doctest.testmod(nlp_lstm.cell, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_bias_starts_as_keras_lstm_cell_does(unit_forget_bias):
    ours, ref = (
        LSTMCell(U, unit_forget_bias=unit_forget_bias),
        keras.layers.LSTMCell(U, unit_forget_bias=unit_forget_bias),
    )
    ours.build((None, D))
    ref.build((None, D))
    np.testing.assert_array_equal(np.asarray(ours.bias), np.asarray(ref.bias))
    assert np.asarray(ours.bias)[U : 2 * U].tolist() == [1.0 if unit_forget_bias else 0.0] * U
