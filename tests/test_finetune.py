"""The sentiment classifier fine-tuned from a next-word model (`train sentiment --encoder`), on tiny data:
it starts from the language model's weights, unfreezes as it says, refuses what it cannot use, and
works on every path a sentiment model takes (predict, explain, export, serve)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_tiny_aclimdb
from nextword_helpers import write_model_folder
from serve_helpers import running
from test_export import SERVE_WITH_TENSORFLOW_ONLY

from nlp_lstm.data_config import DataConfig
from nlp_lstm.nextword.model import load_nextword_folder
from nlp_lstm.run_folder import OutputFolderError
from nlp_lstm.sentiment.config import SentimentConfig, dry_run_config, with_encoder
from nlp_lstm.sentiment.finetune import (
    GradualUnfreezing,
    LayerwiseAdam,
    copy_encoder,
    layer_rates,
    unfreezing_groups,
)
from nlp_lstm.sentiment.model import build_finetuned_model
from nlp_lstm.sentiment.train import train_sentiment
from nlp_lstm.text import BOUNDARY_TOKEN
from nlp_lstm.training import FitConfig

REVIEWS = ["The movie was great and the acting was great too.", "What a boring film.", "", "日本語"]


def _config(language_model: Path, **changes) -> SentimentConfig:
    return replace(dry_run_config(with_encoder(SentimentConfig(), str(language_model))), **changes)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny aclImdb folder, a next-word model folder, and a classifier fine-tuned from it."""
    root = tmp_path_factory.mktemp("finetune")
    folders = {"data": write_tiny_aclimdb(root), "lm": write_model_folder(root / "lm", units=8)}
    folders["model"] = root / "model"
    train_sentiment(DataConfig(source=str(folders["data"]), verbose=False), _config(folders["lm"]), folders["model"],
                    fit_config=FitConfig(dry_run=True, verbose=0, tensorboard=False))  # fmt: skip
    return folders


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "nlp_lstm", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)  # fmt: skip


def _one_line_exit_2(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for word in words:
        assert word in lines[0]


def test_the_classifier_starts_from_the_language_models_weights_and_reads_as_it_does(tiny):
    encoder = load_nextword_folder(tiny["lm"])
    config = _config(tiny["lm"])
    boundary = encoder.vocabulary.index(BOUNDARY_TOKEN)
    model = build_finetuned_model(config, len(encoder.vocabulary), encoder.config.num_layers, boundary)
    lstm = model.get_layer("encoder_lstm_0")
    assert not np.allclose(lstm.get_weights()[0], encoder.model.lstm_layers[0].get_weights()[0])  # random, at first
    copy_encoder(model, encoder)
    vectors = model.get_layer("embedding").get_weights()[0]
    np.testing.assert_array_equal(vectors, encoder.model.embedding.get_weights()[0])
    for mine, theirs in zip(lstm.get_weights(), encoder.model.lstm_layers[0].get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # The oracle: the language model's own features for [BOS] + the review, step by step.
    ids = np.array([[5, 9, 3, 7, 0, 0], [4, 0, 0, 0, 0, 0]], "int64")
    reader = keras.Model(model.input, model.get_layer("encoder_lstm_0").output[0])
    features = reader(ids, training=False).numpy()  # (2, 7, units)
    for row, length in enumerate([4, 1]):
        expected, _ = encoder.model.features(np.concatenate([[boundary], ids[row, :length]])[None])
        np.testing.assert_allclose(features[row, : length + 1], expected[0].numpy(), atol=1e-5)


def test_a_saved_fine_tuned_folder_records_its_language_model_and_copies_its_vocabulary(tiny):
    saved = json.loads((tiny["model"] / "config.json").read_text())
    assert saved["encoder"]["folder"] == str(tiny["lm"].absolute())
    assert saved["sentiment"]["encoder"] == str(tiny["lm"].absolute())
    assert (tiny["model"] / "vocabulary.txt").read_bytes() == (tiny["lm"] / "vocabulary.txt").read_bytes()
    assert saved["sentiment"]["units"] == load_nextword_folder(tiny["lm"]).config.units


def _weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {name: [w.copy() for w in model.get_layer(name).get_weights()]
            for name in ("embedding", "encoder_lstm_0", "probability")}  # fmt: skip


def test_gradual_unfreezing_trains_the_head_then_one_group_more_each_epoch(tiny):
    encoder = load_nextword_folder(tiny["lm"])
    config = _config(tiny["lm"], ngram_buckets=0, embedding_dropout=0.0, head_dropout=0.0)
    model = build_finetuned_model(config, len(encoder.vocabulary), 1, encoder.vocabulary.index(BOUNDARY_TOKEN))
    copy_encoder(model, encoder)
    groups = unfreezing_groups(model)
    assert groups == [("probability",), ("encoder_lstm_0",), ("embedding",)]
    model.compile(optimizer=LayerwiseAdam(1e-2, layer_factors=layer_rates(groups)), loss="binary_crossentropy")
    snapshots = [_weights(model)]
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(_weights(model)))
    rng = np.random.default_rng(0)
    ids = rng.integers(3, len(encoder.vocabulary), (16, 6))
    labels = rng.integers(0, 2, (16, 1)).astype("float32")
    model.fit(ids, labels, batch_size=8, epochs=4, verbose=0, callbacks=[GradualUnfreezing(groups), record])

    def changed(epoch: int, name: str) -> bool:
        before, after = snapshots[epoch][name], snapshots[epoch + 1][name]
        return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))

    trained = {epoch: {name for name in snapshots[0] if changed(epoch, name)} for epoch in range(4)}
    assert trained == {0: {"probability"}, 1: {"probability", "encoder_lstm_0"},
                       2: {"probability", "encoder_lstm_0", "embedding"},
                       3: {"probability", "encoder_lstm_0", "embedding"}}  # fmt: skip
    assert all(model.get_layer(name).trainable for name in snapshots[0])  # whole again after training


def test_each_group_steps_at_its_own_learning_rate():
    # Adam's first step moves each weight by the rate (times the sign of its gradient), give or take epsilon.
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(3, name="lower")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="probability")(hidden))
    model.compile(optimizer=LayerwiseAdam(0.01, layer_factors={"lower": 1 / 2.6}), loss="mse")
    before = {name: model.get_layer(name).get_weights()[0].copy() for name in ("lower", "probability")}
    model.train_on_batch(np.ones((4, 3), "float32"), np.full((4, 1), 5.0, "float32"))
    for name, rate in (("lower", 0.01 / 2.6), ("probability", 0.01)):
        moved = np.abs(model.get_layer(name).get_weights()[0] - before[name])
        np.testing.assert_allclose(moved[moved > 0], rate, rtol=1e-3)
    assert layer_rates([("a",), ("b", "c")], ratio=4.0) == {"a": 1.0, "b": 0.25, "c": 0.25}


def test_a_group_unfrozen_later_takes_adams_first_step_at_its_own_rate():
    # Counted from the optimizer's first step, "lower"'s first step in epoch 2 would be 0.58 of its rate
    # (zero moments, corrected as at step 4); counted from its unfreezing it is the rate itself.
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(3, name="lower")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="probability")(hidden))
    groups = [("probability",), ("lower",)]
    model.compile(optimizer=LayerwiseAdam(0.01, layer_factors=layer_rates(groups)), loss="mse")
    kernels = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: kernels.append(model.get_layer("lower").get_weights()[0].copy()),
        on_train_batch_end=lambda batch, logs: kernels.append(model.get_layer("lower").get_weights()[0].copy()),
    )
    x, y = np.ones((12, 3), "float32"), np.full((12, 1), 5.0, "float32")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[GradualUnfreezing(groups), record])
    assert model.optimizer.iterations.numpy() == 6
    first_epoch, second_epoch = kernels[:4], kernels[4:]
    assert all(np.array_equal(k, first_epoch[0]) for k in first_epoch)  # frozen through epoch 1
    moved = np.abs(second_epoch[1] - second_epoch[0])
    assert (moved > 0).all()
    np.testing.assert_allclose(moved, 0.01 / 2.6, rtol=1e-3)


def test_a_folder_that_is_not_a_next_word_model_is_refused_in_one_line(tiny, tmp_path):
    for folder, words in ((tiny["model"], ("not a nextword model",)), (tmp_path / "missing", ("not a folder",))):
        result = _run("train", "sentiment", "--data", str(tiny["data"]), "--encoder", str(folder),
                      "--out", str(tmp_path / "out"), "--dry-run")  # fmt: skip
        _one_line_exit_2(result, "--encoder", *words)
        assert "--model" not in result.stderr  # the flag it names is the one the user typed
    result = _run("train", "sentiment", "--encoder", str(tiny["lm"]), "--units", "32", "--dry-run")
    _one_line_exit_2(result, "--units")
    assert not (tmp_path / "out").exists()


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_a_resume_from_another_language_model_is_refused_and_the_same_one_resumes(tiny, tmp_path):
    other = write_model_folder(tmp_path / "other_lm", units=8, seed=1)
    out = tmp_path / "model"
    data = DataConfig(source=str(tiny["data"]), verbose=False)
    config = _config(tiny["lm"], epochs=2)
    fit_config = FitConfig(epochs=2, verbose=0, tensorboard=False, steps_per_epoch=1, validation_steps=1)
    with pytest.raises(KeyboardInterrupt):
        train_sentiment(data, config, out, fit_config=fit_config, callbacks=[_StopAfterFirstEpoch()])
    config_before = (out / "config.json").read_bytes()
    with pytest.raises(OutputFolderError, match="another one"):
        train_sentiment(data, _config(other, epochs=2), out, fit_config=fit_config)
    # The same folder trained again is another model too; through the command line: one line, exit 2.
    retrained = tmp_path / "retrained_lm"
    shutil.copytree(tiny["lm"], retrained)
    saved = json.loads((out / "config.json").read_text())
    saved["encoder"]["folder"] = saved["sentiment"]["encoder"] = str(retrained)
    (out / "config.json").write_text(json.dumps(saved))
    write_model_folder(retrained, units=8, seed=2)
    result = _run("train", "sentiment", "--data", str(tiny["data"]), "--encoder", str(retrained), "--out", str(out),
                  "--epochs", "2", "--max-length", "32", "--batch-size", "8", "--ngram-buckets", "64")  # fmt: skip
    _one_line_exit_2(result, "interrupted run fine-tuned from", "--overwrite")
    (out / "config.json").write_bytes(config_before)
    metrics = train_sentiment(data, config, out, fit_config=fit_config)  # the same one: resumes
    assert metrics["resumed_at_epoch"] == 1 and metrics["epochs"] == 2


def test_predict_and_explain_work_on_a_fine_tuned_model(tiny):
    import nlp_lstm
    from nlp_lstm.sentiment.explain import explain

    loaded = nlp_lstm.sentiment.load(tiny["model"])
    predictions = loaded.predict(REVIEWS)
    assert [p.judged for p in predictions] == [True, True, False, False]
    ids = tf.constant([[loaded.vectorizer.get_vocabulary().index(w) for w in ("the", "movie", "was", "great")]])
    expected = float(np.mean(loaded.model(ids, training=False).numpy()))
    short = loaded.predict(["the movie was great"])[0]
    assert short.probability == pytest.approx(expected, abs=1e-6)
    why = explain(loaded, REVIEWS[0], steps=64)
    gap = why.logits["lstm"] - why.baseline_logit
    assert sum(why.members["lstm"]) == pytest.approx(gap, abs=0.01 + 0.01 * abs(gap))  # integrated gradients add up
    assert sorted(why.members) == ["lstm", "ngram"]


def test_export_and_serve_work_on_a_fine_tuned_model(tiny, tmp_path):
    import nlp_lstm
    from nlp_lstm.sentiment.export import export_sentiment
    from nlp_lstm.serve.models import load_served

    expected = nlp_lstm.sentiment.load(tiny["model"]).predict(REVIEWS[:2])
    exported = export_sentiment(tiny["model"], tmp_path / "exports")
    served = subprocess.run(
        [sys.executable, "-I", "-c", SERVE_WITH_TENSORFLOW_ONLY, str(exported)],
        input=json.dumps([text.encode().hex() for text in REVIEWS[:2]]), capture_output=True, text=True,
        timeout=120, cwd="/", env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    outputs = json.loads(served.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(outputs["probability"], [p.probability for p in expected], atol=1e-5)
    with running({"sentiment": load_served("sentiment", tiny["model"])}) as client:
        status, rows = client.post("/v1/models/sentiment:predict", {"instances": REVIEWS})
    assert status == 200
    assert [row["judged"] for row in rows["predictions"]] == [True, True, False, False]
    assert rows["predictions"][0]["probability"] == pytest.approx(expected[0].probability, abs=1e-5)


def test_bench_members_scores_each_member_as_the_model_does(tiny, capsys):
    import runpy

    from nlp_lstm.sentiment.evaluate import evaluate_sentiment

    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "bench_members.py"))
    assert bench["main"](["--model", str(tiny["model"]), "--data", str(tiny["data"]), "--json"]) == 0
    out = capsys.readouterr().out
    row = json.loads(out.strip().splitlines()[-1])[0]
    expected = evaluate_sentiment(tiny["model"], DataConfig(source=str(tiny["data"]), verbose=False))
    assert row["test"]["app"] == pytest.approx(expected["accuracy"]) and row["test"]["n"] == expected["n"]
    assert set(row["val"]) == {"lstm", "ngram", "app", "n"} and row["encoder"] == str(tiny["lm"].absolute())
    assert "| fine-tuned next-word LSTM" in out


def test_docstring_examples_run(tiny):
    import doctest

    from nlp_lstm.sentiment import finetune

    result = doctest.testmod(finetune, extraglobs={"model_dir": str(tiny["lm"])})
    assert result.attempted >= 3 and result.failed == 0
