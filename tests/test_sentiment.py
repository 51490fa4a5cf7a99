"""Tests of nlp_lstm.sentiment on the tiny aclImdb (conftest.py) and one tiny model trained once."""

from __future__ import annotations

import dataclasses
import doctest
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_tiny_aclimdb
from sentiment_helpers import tiny_sentiment_model

from nlp_lstm._version import __version__
from nlp_lstm.data import load_imdb
from nlp_lstm.data_config import DataConfig, DataError
from nlp_lstm.run_folder import ModelFolderError, OutputFolderError
from nlp_lstm.sentiment import train as sentiment_train
from nlp_lstm.sentiment.config import SentimentConfig, dry_run_config
from nlp_lstm.sentiment.evaluate import evaluate_sentiment
from nlp_lstm.sentiment.model import (
    MeanProbabilityAccuracy,
    MembersBinaryCrossentropy,
    build_sentiment_model,
    compile_sentiment_model,
    positive_probability,
    vectorize_texts,
)
from nlp_lstm.sentiment.ngrams import fit_ngram_logistic
from nlp_lstm.sentiment.predict import load_sentiment_model, predict_sentiment
from nlp_lstm.sentiment.train import train_sentiment
from nlp_lstm.text import (
    VectorizerConfig,
    make_classification_dataset,
    vectorizer_from_vocabulary,
)
from nlp_lstm.training import FitConfig

# Texts a user may send: empty, blank, 1 MB, not UTF-8, emoji, other scripts, markup only.
AWKWARD_TEXTS = [
    "",
    "   \n\t ",
    "great " * 170_000,  # ~1 MB
    b"caf\xe9 cr\xe8me \xff\xfe broken bytes",
    "terrible film \udcff with a lone surrogate",  # what Python makes of a non-UTF-8 argv
    "\U0001f600\U0001f600\U0001f62c",
    "これは素晴らしい映画です",
    "فيلم رائع",
    "<br /><br />",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_sentiment_model(tmp_path_factory)


@pytest.fixture
def model_copy(trained, tmp_path) -> Path:
    """A copy of the tiny model folder that a test may damage."""
    return Path(shutil.copytree(trained[1], tmp_path / "model"))


def quiet_data(source: Path, **kwargs) -> DataConfig:
    return DataConfig(source=str(source), verbose=False, **kwargs)


def test_docstring_examples_run(trained):
    acl_imdb, model_dir = trained
    from nlp_lstm.sentiment import config, evaluate, model, predict, train

    globs = {"acl_imdb": str(acl_imdb), "model_dir": str(model_dir)}
    results = [doctest.testmod(module, extraglobs=globs) for module in (config, model, train, evaluate, predict)]
    assert sum(r.attempted for r in results) >= 20 and sum(r.failed for r in results) == 0


def test_model_folder_holds_what_the_issue_lists(trained):
    _, model_dir = trained
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.keras", "vocabulary.txt", "config.json", "metrics.json", "history.csv", "curves.png"} <= names
    config = json.loads((model_dir / "config.json").read_text())
    assert config["app"] == "sentiment" and config["labels"] == ["neg", "pos"]
    assert SentimentConfig.from_dict(config["sentiment"]) == dry_run_config()
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert {"val_accuracy", "test_accuracy", "epochs", "wall_time_s", "machine"} <= set(metrics)
    assert metrics["test"]["n"] == 4 and metrics["sizes"] == {"train": 7, "val": 1, "test": 4}


def test_masking_makes_padding_irrelevant():
    model = build_sentiment_model(SentimentConfig(max_tokens=30, embedding_dim=6, units=3, ngram_buckets=64, seed=3))
    ids = np.array([[4, 9, 2, 7, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0, 0, 0]])  # (2, 8)
    padded = model(ids).numpy()
    for row, length in ((0, 4), (1, 1)):
        alone = model(ids[row : row + 1, :length]).numpy()
        np.testing.assert_allclose(padded[row], alone[0], atol=1e-6)


def test_vectorize_texts_gives_the_training_pipeline_ids():
    vocabulary = ["", "[UNK]", "film", "good", "bad", "plot", "the"]
    vectorizer = vectorizer_from_vocabulary(vocabulary, VectorizerConfig())
    texts = ["The good film.", "", "!!!", "bad bad bad plot the film good", "unknown words only", "Film"]
    ds = tf.data.Dataset.from_tensor_slices((texts, [0] * len(texts)))
    ((expected, _),) = make_classification_dataset(ds, vectorizer, len(texts), 5, shuffle=False, seed=0, bucket=False)
    got = vectorize_texts(vectorizer, tf.constant(texts), 5)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert vectorize_texts(vectorizer, tf.constant(["", " "]), 5).numpy().tolist() == [[1], [1]]


def test_awkward_texts_get_predictions(trained):
    _, model_dir = trained
    predictions = predict_sentiment(model_dir, AWKWARD_TEXTS)
    assert len(predictions) == len(AWKWARD_TEXTS)
    # Judged: the texts with a word of the tiny vocabulary ("great", "caf", "film"); the others hold none.
    assert [p.judged for p in predictions] == [False, False, True, True, True, False, False, False, False]
    for prediction in predictions:
        if prediction.judged:
            assert prediction.label == ("pos" if prediction.probability >= 0.5 else "neg")
            assert 0.0 <= prediction.probability <= 1.0
        else:
            assert prediction.label == "none" and np.isnan(prediction.probability)
    # A 1 MB review is read up to max_length tokens, like the reviews the model trained on.
    max_length = load_sentiment_model(model_dir).config.max_length
    cut = predict_sentiment(model_dir, ["great " * max_length])[0].probability
    assert predictions[2].probability == pytest.approx(cut, abs=1e-6)


def test_a_prediction_does_not_depend_on_its_batch(trained):
    _, model_dir = trained
    texts = ["Loved it!", "A dull, long and boring film " * 5, "meh"]
    together = [p.probability for p in predict_sentiment(model_dir, texts)]
    alone = [predict_sentiment(model_dir, [text])[0].probability for text in texts]
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_the_members_loss_is_each_members_cross_entropy_averaged():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 6)
    probabilities = rng.uniform(0.05, 0.95, (6, 3)).astype("float32")
    got = float(MembersBinaryCrossentropy()(labels, probabilities))
    y = labels[:, None]
    expected = -np.mean(y * np.log(probabilities) + (1 - y) * np.log(1 - probabilities))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # One member: the loss Keras has for it.
    alone = float(keras.losses.BinaryCrossentropy()(labels[:, None], probabilities[:, :1]))
    np.testing.assert_allclose(float(MembersBinaryCrossentropy()(labels, probabilities[:, :1])), alone, rtol=1e-6)


def test_the_bilstm_learns_as_if_it_were_trained_alone():
    config = SentimentConfig(max_tokens=30, embedding_dim=4, units=3, ngram_buckets=64)
    model = build_sentiment_model(config)
    ids = np.array([[5, 7, 2, 0], [3, 9, 0, 0], [4, 0, 0, 0]])
    labels = np.array([1, 0, 1])
    bilstm = model.trainable_weights
    assert bilstm and not any(w.path.startswith("ngram") for w in bilstm)  # the n-gram member is fitted, then fixed
    with tf.GradientTape(persistent=True) as tape:
        probabilities = model(ids, training=False)  # (3, 2)
        together = MembersBinaryCrossentropy()(labels, probabilities)
        alone = keras.losses.BinaryCrossentropy()(labels[:, None], probabilities[:, :1])
    assert probabilities.shape[1] == 2  # the BiLSTM and the n-gram member
    for got, expected in zip(tape.gradient(together, bilstm), tape.gradient(alone, bilstm), strict=True):
        got, expected = tf.convert_to_tensor(got), tf.convert_to_tensor(expected)
        np.testing.assert_allclose(got.numpy(), expected.numpy() / 2, atol=1e-7)  # the 1/2 of the average


def test_the_verdict_is_the_mean_of_the_members():
    config = SentimentConfig(max_tokens=30, embedding_dim=4, units=3, ngram_buckets=64)
    model = build_sentiment_model(config)
    model.get_layer("ngram_probability").set_weights(
        [w + 0.5 for w in model.get_layer("ngram_probability").get_weights()]
    )
    ids = np.random.default_rng(1).integers(0, 30, (8, 5))
    members = model(ids, training=False).numpy()  # (8, 2): the BiLSTM, then the n-gram member
    assert members.shape == (8, 2) and np.ptp(members, axis=1).max() > 1e-4  # members differ
    np.testing.assert_allclose(positive_probability(model, ids).numpy(), members.mean(axis=1), rtol=1e-6)
    labels = (members[:, 0] > np.median(members[:, 0])).astype("int64")
    metric = MeanProbabilityAccuracy()
    metric.update_state(labels, members)
    assert float(metric.result()) == pytest.approx(np.mean((members.mean(axis=1) >= 0.5) == labels))


def test_the_ngram_member_is_fitted_on_the_training_split_and_kept(trained):
    acl_imdb, model_dir = trained
    loaded = load_sentiment_model(model_dir)
    config = loaded.config
    splits = load_imdb(quiet_data(acl_imdb))  # the data the fixture trained on
    batches = make_classification_dataset(
        splits.train, loaded.vectorizer, config.batch_size, config.max_length, shuffle=False, seed=config.seed
    )
    hashed, member = loaded.model.get_layer("ngram_ids"), loaded.model.get_layer("ngram_probability")
    refit = fit_ngram_logistic(((hashed(ids).numpy(), labels.numpy()) for ids, labels in batches), member.rows,
                               c=config.ngram_c)  # fmt: skip
    weights, bias = member.get_weights()
    assert np.count_nonzero(weights) == refit.features > 0
    # What training saved is the fit on the training split, unmoved by the epochs of the BiLSTMs.
    np.testing.assert_allclose(weights, refit.weights, atol=1e-6)
    np.testing.assert_allclose(bias, [refit.bias], atol=1e-6)


def test_labels_are_pinned_neg_0_pos_1(trained):
    acl_imdb, model_dir = trained
    loaded = load_sentiment_model(model_dir)
    # A model whose every member says pos for everything: the pos row of the confusion matrix is all correct.
    assert loaded.config.ngram_buckets  # the default model has an n-gram member
    for name in ["probability", "ngram_probability"]:
        head = loaded.model.get_layer(name)
        head.set_weights([np.zeros_like(head.get_weights()[0]), np.array([10.0], "float32")])
    metrics = evaluate_sentiment(loaded, quiet_data(acl_imdb))
    # The tiny test split: test/neg holds 2 reviews, test/pos 2 (conftest.py); rows are true labels.
    assert metrics["confusion_matrix"] == [[0, 2], [0, 2]]
    assert metrics["recall"] == 1.0 and metrics["accuracy"] == 0.5
    assert {p.label for p in predict_sentiment(loaded, ["a great film", "dull"])} == {"pos"}


def test_evaluate_predict_and_export_reuse_the_saved_vocabulary(trained, monkeypatch):
    acl_imdb, model_dir = trained

    def never(*args, **kwargs):
        raise AssertionError("the vocabulary was rebuilt")

    monkeypatch.setattr(sentiment_train, "build_vectorizer", never)
    saved = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    loaded = load_sentiment_model(model_dir)
    assert [str(t) for t in loaded.vectorizer.get_vocabulary()] == saved
    evaluate_sentiment(model_dir, quiet_data(acl_imdb))
    predict_sentiment(model_dir, ["fine"])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: shutil.rmtree(folder), "is not a folder"),
        (lambda folder: (folder / "config.json").unlink(), "no config.json"),
        (lambda folder: (folder / "model.keras").unlink(), "lacks model.keras"),
        (lambda folder: (folder / "vocabulary.txt").unlink(), "lacks vocabulary.txt"),
        (lambda folder: (folder / "model.keras").write_bytes(b"not a zip at all"), "damaged"),
        (lambda folder: (folder / "model.keras").write_bytes((folder / "model.keras").read_bytes()[:500]), "damaged"),
        (
            lambda folder: (folder / "vocabulary.txt").write_text("\n[UNK]\nfilm\n"),
            "not the vocabulary this model was trained with",
        ),
        (
            lambda folder: (folder / "config.json").write_text(json.dumps({"app": "nextword"})),
            "not a sentiment model",
        ),
    ],
    ids=["no-folder", "no-config", "no-model", "no-vocabulary", "corrupt-model", "truncated-model",
         "other-vocabulary", "nextword-folder"],
)  # fmt: skip
def test_a_bad_model_folder_says_what_is_wrong(model_copy, damage, message):
    damage(model_copy)
    with pytest.raises(ModelFolderError, match=message):
        load_sentiment_model(model_copy)


def test_failed_or_refused_training_leaves_the_saved_model_untouched(model_copy, tmp_path):
    before = {p.name: p.read_bytes() for p in model_copy.iterdir() if p.is_file()}
    with pytest.raises(OutputFolderError, match="already holds a trained model"):
        train_sentiment(quiet_data(tmp_path / "no-data"), dry_run_config(), model_copy)
    with pytest.raises(DataError, match="does not exist"):
        train_sentiment(quiet_data(tmp_path / "no-data"), dry_run_config(), model_copy, overwrite=True)
    assert {p.name: p.read_bytes() for p in model_copy.iterdir() if p.is_file()} == before


def test_an_interrupted_run_with_other_options_is_not_resumed(model_copy, tmp_path):
    (model_copy / "metrics.json").unlink()
    (model_copy / "backup").mkdir()
    (model_copy / "backup" / "state.json").write_text('{"epoch": 1, "step": 0}')
    with pytest.raises(OutputFolderError, match="interrupted training run with other options"):
        train_sentiment(quiet_data(tmp_path / "unused"), dry_run_config(SentimentConfig(units=5)), model_copy)
    assert (model_copy / "backup" / "state.json").exists()


def test_a_folder_with_a_relative_data_path_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = dry_run_config()
    older = {
        "app": "sentiment",
        "nlp_lstm_version": __version__,
        "sentiment": dataclasses.asdict(config),
        "data": {"source": "aclImdb", "val_fraction": 0.1, "seed": 1337, "limit": None},  # relative path
    }
    (tmp_path / "config.json").write_text(json.dumps(older))
    assert sentiment_train._same_run(tmp_path, config, DataConfig(source="aclImdb"))
    assert sentiment_train._same_run(tmp_path, config, DataConfig(source=str(tmp_path / "aclImdb")))
    assert not sentiment_train._same_run(tmp_path, dataclasses.replace(config, units=5), DataConfig(source="aclImdb"))
    assert not sentiment_train._same_run(tmp_path, config, DataConfig(source="aclImdb", seed=1))


def test_training_data_problems_are_data_errors(tmp_path, aclimdb_writer, tiny_files):
    files = {path: raw for path, raw in tiny_files.items() if not path.startswith("test/")}
    no_test = aclimdb_writer(tmp_path / "no_test", files)
    with pytest.raises(DataError, match="aclImdb layout"):
        train_sentiment(quiet_data(no_test), dry_run_config(), tmp_path / "out")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 truncated gzip")
    with pytest.raises(DataError, match="not a readable tar archive"):
        train_sentiment(quiet_data(broken), dry_run_config(), tmp_path / "out2")


def test_no_validation_split_is_a_data_error(trained, tmp_path):
    with pytest.raises(DataError, match="no validation reviews"):
        train_sentiment(quiet_data(trained[0], val_fraction=0.0), dry_run_config(), tmp_path / "out")


@pytest.mark.slow
def test_real_data_short_run(aclimdb_archive, tmp_path):
    """One short epoch on 2,000 reviews of ../shared/data: learns something (val accuracy > 0.6)."""
    metrics = train_sentiment(
        DataConfig(source=str(aclimdb_archive), limit=2000, include_unsup=False),
        SentimentConfig(epochs=1, max_length=200),
        tmp_path / "sentiment",
        fit_config=FitConfig(epochs=1, verbose=2),
    )
    assert metrics["val_accuracy"] > 0.6


def test_cosine_decay_falls_from_the_learning_rate_to_zero_over_the_epochs():
    config = SentimentConfig(max_tokens=30, embedding_dim=4, units=3, ngram_buckets=64, epochs=2, learning_rate=0.004,
                             learning_rate_decay="cosine")  # fmt: skip
    model = compile_sentiment_model(build_sentiment_model(config), config, steps_per_epoch=5)
    model.optimizer.build(model.trainable_variables)
    for step in (0, 3, 5, 9, 10, 14):
        model.optimizer.iterations.assign(step)  # .learning_rate is the schedule's value at this step
        expected = 0.004 * 0.5 * (1 + np.cos(np.pi * min(step, 10) / 10))
        assert float(model.optimizer.learning_rate) == pytest.approx(expected, abs=1e-9)


class _LastRate(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.steps = int(self.model.optimizer.iterations.numpy())
        self.rate = float(self.model.optimizer.learning_rate)


def test_cosine_decay_reaches_zero_at_the_last_step_of_training(tmp_path):
    acl_imdb = write_tiny_aclimdb(tmp_path / "data")
    config = dataclasses.replace(dry_run_config(), batch_size=2, epochs=2, learning_rate_decay="cosine")
    last = _LastRate()
    fit_config = FitConfig(epochs=2, patience=5, verbose=0, tensorboard=False)
    train_sentiment(quiet_data(acl_imdb), config, tmp_path / "model", fit_config=fit_config, callbacks=[last])
    assert last.steps >= 4  # 6 training reviews in batches of at most 2, twice
    assert last.rate == pytest.approx(0.0, abs=1e-9)


def test_learning_rate_decay_must_be_known():
    with pytest.raises(ValueError, match="learning_rate_decay must be one of"):
        SentimentConfig(learning_rate_decay="linear")


def test_a_folder_of_an_earlier_version_is_refused_with_how_to_retrain(model_copy):
    saved = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**saved, "nlp_lstm_version": "0.1.0"}))
    with pytest.raises(ModelFolderError, match=r"written by nlp_lstm 0\.1\.0.*train it again: .*--overwrite"):
        load_sentiment_model(model_copy)
