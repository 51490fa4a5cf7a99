"""Tests of the next-word model, its training and its evaluation (nextword_model, nextword, nextword_eval,
kn_trigram); tiny data made here."""

from __future__ import annotations

import doctest
import json
import math
import re
import runpy
import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_tiny_aclimdb
from nextword_helpers import toy_corpus_file, write_model_folder

from nlp_lstm.data_config import CorpusConfig, DataError
from nlp_lstm.nextword import config as nextword_config
from nlp_lstm.nextword import corpus, kn_trigram
from nlp_lstm.nextword import evaluate as nextword_eval
from nlp_lstm.nextword import metrics as nextword_metrics
from nlp_lstm.nextword import model as nextword_model
from nlp_lstm.nextword import train as nextword
from nlp_lstm.nextword.config import NextWordConfig, NextWordModelConfig
from nlp_lstm.nextword.corpus import load_corpus
from nlp_lstm.nextword.evaluate import score_model, token_sequences
from nlp_lstm.nextword.generate import Decoder
from nlp_lstm.nextword.metrics import NextWordMetrics
from nlp_lstm.nextword.model import build_nextword_model, load_nextword_folder, sampled_softmax_loss
from nlp_lstm.nextword.train import train_nextword
from nlp_lstm.run_folder import ModelFolderError, OutputFolderError
from nlp_lstm.text import VectorizerConfig, vectorizer_from_vocabulary
from nlp_lstm.training import FitConfig

REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, argv: list[str]) -> int:
    old = sys.argv
    sys.argv = [name, *argv]
    try:
        runpy.run_path(str(REPO / "scripts" / name), run_name="__main__")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        sys.argv = old
    return 0


@pytest.fixture(scope="module")
def acl_imdb(tmp_path_factory) -> str:
    return str(write_tiny_aclimdb(tmp_path_factory.mktemp("imdb")))


@pytest.fixture(scope="module")
def trained_dir(acl_imdb, tmp_path_factory) -> str:
    """A folder written by scripts/train_nextword.py --dry-run (so that --dry-run is tested too)."""
    out = tmp_path_factory.mktemp("trained") / "nextword"
    assert run_script("train_nextword.py", ["--dry-run", "--data", acl_imdb, "--out", str(out)]) == 0
    return str(out)


def test_trained_folder_holds_everything_and_loads_back(trained_dir):
    folder = Path(trained_dir)
    names = {p.name for p in folder.iterdir()}
    assert {"model.keras", "vocabulary.txt", "config.json", "metrics.json", "history.csv", "curves.png"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["app"] == "nextword" and config["corpus"]["data"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["val_perplexity"] > 1 and metrics["train_tokens"] > 0
    loaded = load_nextword_folder(trained_dir)
    assert loaded.vocabulary[:3] == ["", "[UNK]", "[BOS]"]
    ids = np.array([[2, 5, 9, 4]])
    reloaded = keras.models.load_model(folder / "model.keras", compile=False)
    np.testing.assert_allclose(loaded.model.logits(loaded.model(ids)), reloaded.logits(reloaded(ids)), atol=1e-6)


def test_sampled_softmax_training_learns_the_full_distribution():
    """A repeating toy language: after ~200 sampled-softmax steps the full-softmax perplexity is low."""
    keras.utils.set_random_seed(0)
    vocab_size, window, batch = 40, 8, 16
    stream = np.tile(np.array([2, 5, 9, 7, 30, 11, 5, 9, 13]), 400)  # mostly deterministic next tokens
    starts = np.arange(0, len(stream) - window - 1, 4)
    x = np.stack([stream[s : s + window] for s in starts])
    y = np.stack([stream[s + 1 : s + window + 1] for s in starts])
    epochs = 4
    config = replace(nextword_config.dry_run_config(), max_tokens=vocab_size, units=16, embedding_dim=16,
                     num_sampled=16, window=window, batch_size=batch, epochs=epochs, learning_rate=1e-2,
                     train_tokens=len(x) // batch * batch * window * epochs)  # fmt: skip
    model = nextword.compile_nextword_model(build_nextword_model(config.model_config(vocab_size)), config)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    after = model.evaluate(x, y, verbose=0)  # full softmax: exp(loss) is a perplexity
    assert before == pytest.approx(math.log(vocab_size), abs=0.3)
    assert math.exp(after) < 2.5, math.exp(after)  # from 40; only "5 ->" has two next tokens


def test_sampled_softmax_loss_ignores_accidental_hits_and_matches_its_definition():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 4)).astype("float32")
    weights, bias = rng.normal(size=(30, 4)).astype("float32"), rng.normal(size=30).astype("float32")
    targets = np.array([0, 3, 3, 29, 7])
    losses = np.asarray(sampled_softmax_loss(features, targets, weights, bias, 6, seed=keras.random.SeedGenerator(1)))
    again = np.asarray(sampled_softmax_loss(features, targets, weights, bias, 6, seed=keras.random.SeedGenerator(1)))
    np.testing.assert_allclose(losses, again)  # seeded
    assert np.all(losses > 0) and np.all(np.isfinite(losses))
    # A target whose logit towers over every candidate's costs (almost) nothing; a buried one costs a lot.
    towering = np.zeros((30, 4), "float32")
    towering[3, 0] = 5.0
    easy = np.asarray(sampled_softmax_loss(np.array([[10.0, 0, 0, 0]], "float32"), np.array([3]), towering,
                                           np.zeros(30, "float32"), 6, seed=0))  # fmt: skip
    hard = np.asarray(sampled_softmax_loss(np.array([[-10.0, 0, 0, 0]], "float32"), np.array([3]), towering,
                                           np.zeros(30, "float32"), 6, seed=0))  # fmt: skip
    assert easy[0] < 1e-6 and hard[0] > 50


def test_model_config_is_validated():
    with pytest.raises(ValueError, match="tie_embeddings"):
        NextWordModelConfig(50, embedding_dim=8, units=16)
    with pytest.raises(ValueError, match="num_layers"):
        NextWordModelConfig(50, 8, 8, num_layers=3)
    with pytest.raises(ValueError, match="train_tokens"):
        NextWordConfig(train_tokens=100)


def test_carried_states_continue_each_row_across_training_batches(tmp_path):
    model = build_nextword_model(NextWordModelConfig(vocab_size=30, embedding_dim=8, units=8, carry_batch=3))
    ids = np.random.default_rng(0).integers(1, 30, size=(3, 10))
    whole, _ = model.features(ids)  # the oracle: each row read in one go from zero states
    first, second = model(ids[:, :4], training=True), model(ids[:, 4:], training=True)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    np.testing.assert_allclose(model(ids[:, 4:]), model.features(ids[:, 4:])[0], atol=1e-6)  # inference: zeros
    with pytest.raises(ValueError, match="carries the states of 3 rows"):
        model(ids[:2], training=True)
    with pytest.raises(ValueError, match="carry_batch"):
        NextWordModelConfig(vocab_size=30, embedding_dim=8, units=8, carry_batch=-1)
    path = tmp_path / "m.keras"
    model.save(path)  # the carried states are a weight: a resumed run goes on from them
    np.testing.assert_allclose(keras.models.load_model(path).carried_states, model.carried_states)
    assert NextWordConfig.from_dict({"units": 8, "embedding_dim": 8}).carry_states is False  # older folders


def test_carry_states_trains_through_the_cli_on_one_device_only(tmp_path, capsys):
    from nlp_lstm.cli import main

    path = toy_corpus_file(tmp_path)
    flags = ["train", "nextword", "--corpus", str(path), "--dry-run", "--carry-states"]
    assert main([*flags, "--out", str(tmp_path / "one")]) == 0
    loaded = load_nextword_folder(str(tmp_path / "one"))
    assert loaded.config.carry_states and loaded.model.config.carry_batch == loaded.config.batch_size
    assert loaded.metrics["parameters"] == sum(int(np.prod(w.shape)) for w in loaded.model.trainable_weights)
    texts = load_corpus(loaded.corpus, verbose=False).train
    vectorizer = vectorizer_from_vocabulary(loaded.vocabulary, VectorizerConfig(None))
    batches = iter(nextword._windows(texts, vectorizer, loaded.config, train=True))  # what training reads
    (_, targets), (next_inputs, _) = next(batches), next(batches)
    np.testing.assert_array_equal(next_inputs[:, 0], targets[:, -1])  # rows that go on, for the carried states
    two = [*flags, "--out", str(tmp_path / "two"), "--strategy", "mirrored", "--devices", "CPU:0,CPU:1"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(two)  # refused before a strategy is made
    assert exit_info.value.code == 2
    assert "--carry-states trains on one device, not with --strategy mirrored" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()


def test_train_time_limit_reaches_training_and_is_refused_in_a_cluster(tmp_path, capsys, monkeypatch):
    from nlp_lstm.cli import main
    from nlp_lstm.distribute import Role, StrategyError

    flags = ["train", "nextword", "--corpus", str(toy_corpus_file(tmp_path)), "--dry-run"]
    assert main([*flags, "--out", str(tmp_path / "default")]) == 0  # the default limit (55 min) is not reached
    assert "time budget" not in capsys.readouterr().err
    assert main([*flags, "--out", str(tmp_path / "short"), "--max-train-minutes", "1e-6"]) == 0
    assert re.search(r"stopping after epoch 1: another \(~\d+ s\) would pass the time budget", capsys.readouterr().err)
    for bad in ("0", "-5", "nan", "soon"):
        with pytest.raises(SystemExit):
            main([*flags, "--max-train-minutes", bad])
        assert "--max-train-minutes" in capsys.readouterr().err
    monkeypatch.setattr(nextword, "role_of", lambda strategy: Role(chief=True, task="chief", workers=2, replicas=2))
    fit_config = nextword.nextword_fit_config(nextword_config.dry_run_config(), dry_run=True, max_minutes=30.0)
    with pytest.raises(StrategyError, match="cannot be used in a multi-worker run"):
        train_nextword(
            CorpusConfig(files=("unread.txt",)), nextword_config.dry_run_config(), str(tmp_path / "c"), fit_config
        )
    assert not (tmp_path / "c").exists()


def test_corpus_files_are_paragraphs_undecodable_bytes_counted(tmp_path):
    path = toy_corpus_file(tmp_path, paragraphs=40)
    texts = load_corpus(CorpusConfig(files=(str(path),), val_fraction=0.1, test_fraction=0.1), verbose=False)
    assert texts.sizes == {"val": 4, "test": 4, "train": 33} and texts.n_replaced == 1
    assert sum(1 for _ in texts.train) == 33
    (tmp_path / "short.txt").write_text("Only one paragraph.\n", encoding="utf-8")
    with pytest.raises(DataError, match="at least 3"):
        load_corpus(CorpusConfig(files=(str(tmp_path / "short.txt"),)), verbose=False)
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(CorpusConfig(files=(str(tmp_path / "missing.txt"),)), verbose=False)


def test_train_on_corpus_files_through_the_cli(tmp_path, capsys):
    from nlp_lstm.cli import main

    path = toy_corpus_file(tmp_path)
    out = tmp_path / "model"
    assert main(["train", "nextword", "--corpus", str(path), "--out", str(out), "--dry-run"]) == 0
    assert "val perplexity" in capsys.readouterr().out
    assert load_nextword_folder(str(out)).corpus.files == (str(path),)
    assert main(["train", "nextword", "--corpus", str(path), "--out", str(out), "--dry-run"]) == 2  # finished: kept
    assert "already holds a trained model" in capsys.readouterr().err


def test_an_interrupted_run_of_other_options_is_not_resumed(tmp_path):
    out = tmp_path / "model"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "state.json").write_text("{}")
    (out / "config.json").write_text(json.dumps({"app": "nextword", "nextword": {"units": 3}, "corpus": {}}))
    with pytest.raises(OutputFolderError, match="interrupted training run with other options"):
        train_nextword(CorpusConfig(files=("unread.txt",)), nextword_config.dry_run_config(), str(out))


def test_bad_model_folders_say_why(tmp_path):
    folder = write_model_folder(tmp_path / "m")
    vocabulary = (folder / "vocabulary.txt").read_bytes()
    (folder / "vocabulary.txt").write_text("\n[UNK]\n[BOS]\nonly\n", encoding="utf-8")
    with pytest.raises(ModelFolderError, match="not the vocabulary this model was trained with"):
        load_nextword_folder(str(folder))
    (folder / "vocabulary.txt").write_bytes(vocabulary)
    (folder / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFolderError, match="damaged"):
        load_nextword_folder(str(folder))
    (folder / "config.json").write_text('{"app": "sentiment"}')
    with pytest.raises(ModelFolderError, match="not a nextword model"):
        load_nextword_folder(str(folder))


def test_score_model_equals_stepping_the_decoder(tmp_path, capsys):
    loaded = load_nextword_folder(str(write_model_folder(tmp_path / "m", num_layers=2)))
    decoder = Decoder(loaded.model, loaded.vocabulary)
    sequences = token_sequences(["the movie was great", "a boring film", "", "the the qqq acting"], loaded.vocabulary)
    expected = NextWordMetrics()
    for sequence in sequences:
        logits, states = decoder.initial_states(1), decoder.initial_states(1)
        for token, target in zip(sequence[:-1], sequence[1:]):
            logits, states = decoder.step(np.array([token]), states)
            log_probs = tf.nn.log_softmax(logits).numpy()[0]
            top = [i for i, _ in sorted(enumerate(decoder.suggestion_log_probs(logits)[0]), key=lambda p: -p[1])[:3]]
            expected.update(np.array([target]), log_probs[[target]], np.array([top]))
    got = score_model(loaded.model, loaded.vocabulary, sequences, batch_size=3, chunk=2, verbose=True, every_s=0)
    got = got.result()
    want = expected.result()
    progress = r"scoring: 7/11 targets \(64%\), [\d,.]+ targets/s, ~\d+ s left; 3 of 4 texts"
    err = capsys.readouterr().err
    assert re.search(progress, err) and "scoring the model on 4 texts (11 targets)" in err
    assert got["tokens"] == want["tokens"] == 11 and got["scored_top_k"] == want["scored_top_k"] == 10
    assert got["perplexity"] == pytest.approx(want["perplexity"], rel=1e-5)
    assert (got["top1"], got["top3"]) == (want["top1"], want["top3"])


def test_kn_trigram_is_a_distribution_and_its_top_k_is_exact():
    rng = np.random.default_rng(0)
    vocab = 30
    texts = [np.concatenate([[2], rng.zipf(1.5, size=int(rng.integers(0, 25))).clip(3, vocab - 1)]) for _ in range(300)]
    kn = kn_trigram.KneserNeyTrigram(vocab, banned_ids=[0, 1, 2]).fit(texts)
    for u, v in [(2, 2), (2, 3), (3, 3), (4, 17), (29, 28)]:
        probs = kn.probabilities(np.full(vocab, u), np.full(vocab, v), np.arange(vocab))
        assert probs.sum() == pytest.approx(1.0) and probs.min() > 0
        allowed = np.arange(3, vocab)
        brute = allowed[np.lexsort((allowed, -probs[allowed]))][:3]
        assert kn.top_k(u, v).tolist() == brute.tolist()
    assert doctest.testmod(kn_trigram).failed == 0


def test_evaluate_command_and_bench_script(trained_dir, acl_imdb, capsys):
    from nlp_lstm.cli import main

    assert main(["evaluate", "nextword", "--model", trained_dir, "--data", acl_imdb, "--test-texts", "3"]) == 0
    out = capsys.readouterr().out
    assert "KN trigram" in out and "LSTM / KN" in out
    evaluation = json.loads((Path(trained_dir) / "evaluation.json").read_text())
    assert evaluation["test_texts"] == 3 and evaluation["baseline"]["train_tokens"] > 0
    assert run_script("bench_nextword.py", ["--dry-run", "--data", acl_imdb]) == 0  # trains a tiny model first
    assert "test texts: 4" in capsys.readouterr().out
    assert run_script("bench_nextword.py", ["--model", acl_imdb]) == 2  # not a model folder: one line, status 2
    assert capsys.readouterr().err.startswith("nlp-lstm: error: ")  # the one error policy of nlp-lstm


def test_docstring_examples_run(trained_dir, acl_imdb):
    globs = {"acl_imdb": acl_imdb, "model_dir": trained_dir, "replace": replace, "FitConfig": FitConfig}
    for module in (corpus, nextword_model, nextword, nextword_eval, nextword_metrics):
        assert doctest.testmod(module, extraglobs=globs).failed == 0, module.__name__
