"""Tests of nlp_lstm.training on a one-layer model and random data: fit's files, atomic saves, resume."""

from __future__ import annotations

import csv
import doctest
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlp_lstm import records, training
from nlp_lstm.files import atomic_save_model
from nlp_lstm.run_folder import ModelFolderError, OutputFolderError, read_model_config, start_run
from nlp_lstm.training import FitConfig, fit

REPO = Path(__file__).resolve().parents[1]


def tiny_problem(seed: int = 0) -> tuple[keras.Model, tf.data.Dataset, tf.data.Dataset]:
    """A logistic regression on 3 features (label: their sum > 1.5), batches of 4."""
    rng = np.random.default_rng(seed)
    x = rng.random((48, 3)).astype("float32")
    y = (x.sum(axis=1) > 1.5).astype("float32")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(4)
    val = tf.data.Dataset.from_tensor_slices((x[32:], y[32:])).batch(4)
    return model, train, val


def history_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


def quiet(**kwargs) -> FitConfig:
    return FitConfig(verbose=0, tensorboard=False, **kwargs)


def test_docstring_examples_run():
    model, train, val = tiny_problem()
    globs = {"model": model, "train_ds": train, "val_ds": val}
    results = [doctest.testmod(module, extraglobs=globs) for module in (training, records)]
    assert sum(r.attempted for r in results) >= 15 and sum(r.failed for r in results) == 0


def test_fit_keeps_the_best_epoch_in_the_model_and_its_checkpoint(tmp_path):
    model, train, val = tiny_problem()
    result = fit(model, train, val, tmp_path, quiet(epochs=4, patience=None))
    rows = history_rows(tmp_path)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3]
    val_accuracy = [float(row["val_accuracy"]) for row in rows]
    assert result.best == max(val_accuracy)
    assert result.best_epoch == val_accuracy.index(max(val_accuracy))  # the first of equal bests
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == result.best_epoch
    saved = keras.models.load_model(tmp_path / "model.keras")
    for mine, theirs in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert all(float(row["epoch_time_s"]) > 0 for row in rows)
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    state = json.loads((tmp_path / "backup" / "state.json").read_text())
    assert (state["epoch"], state["finished"]) == (4, True)  # kept until the app has saved its results
    assert result.epochs_done == 4 and not result.resumed
    again = fit(model, train, val, tmp_path, quiet(epochs=4, patience=None))  # a rerun trains nothing
    assert (again.epochs_done, again.resumed, again.history) == (4, True, {})


def test_same_seed_same_weights(tmp_path):
    weights = []
    for run in ("a", "b"):
        model, train, val = tiny_problem()
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])
        fit(model, train.shuffle(32, seed=1), val, tmp_path / run, quiet(epochs=2, seed=7))
        weights.append(model.get_weights())
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)


def test_dry_run_is_one_step(tmp_path):
    model, train, val = tiny_problem()
    result = fit(model, train, val, tmp_path, quiet(epochs=5, dry_run=True))
    assert result.epochs_done == 1
    assert int(model.optimizer.iterations.numpy()) == 1


def test_time_budget_stops_before_an_epoch_that_would_overrun(tmp_path):
    model, train, val = tiny_problem()
    result = fit(model, train, val, tmp_path, quiet(epochs=5, patience=None, max_minutes=1e-6))
    assert result.epochs_done == 1


def test_best_checkpoint_is_only_replaced_by_a_better_value(tmp_path):
    model, _, _ = tiny_problem()
    callback = training._AtomicBestCheckpoint(
        tmp_path / "model.keras", tmp_path / "checkpoint.json", "val_accuracy", "max", best=None
    )
    callback.set_model(model)
    saves = []
    for epoch, value in enumerate([0.5, 0.4, float("nan"), 0.6, 0.6]):
        before = (tmp_path / "model.keras").stat().st_mtime_ns if (tmp_path / "model.keras").exists() else None
        callback.on_epoch_end(epoch, {"val_accuracy": value})
        saves.append((tmp_path / "model.keras").stat().st_mtime_ns != before)
    assert saves == [True, False, False, True, False]
    assert json.loads((tmp_path / "checkpoint.json").read_text()) == {
        "monitor": "val_accuracy",
        "best": 0.6,
        "epoch": 3,
    }  # fmt: skip  (no vocabulary beside it: no hash)
    with pytest.raises(KeyError, match="val_loss"):
        training._AtomicBestCheckpoint(tmp_path / "m.keras", tmp_path / "c.json", "val_loss", "min", None).on_epoch_end(
            0, {"loss": 1.0}
        )


def test_an_interrupted_save_leaves_the_old_model_whole(tmp_path, monkeypatch):
    model, _, _ = tiny_problem()
    path = atomic_save_model(model, tmp_path / "model.keras")
    good = path.read_bytes()

    def save_half_then_die(filepath, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # as a kill would, mid-write

    monkeypatch.setattr(model, "save", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        atomic_save_model(model, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary file left


def same(folder):
    return True


def test_output_folder_that_cannot_be_written_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputFolderError, match="cannot write to the output folder"):
        start_run(blocker / "model", overwrite=False, same_run=same)
    assert isinstance(OutputFolderError("x"), OSError)  # so the CLI reports it as an OS error


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputFolderError, match="cannot write"):
            start_run(folder / "model", overwrite=False, same_run=same)
    finally:
        folder.chmod(0o700)


def test_a_finished_model_is_not_overwritten_without_asking(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    (out / "model.keras").write_text("finished model")
    with pytest.raises(OutputFolderError, match="--overwrite"):
        start_run(out, overwrite=False, same_run=same)
    plan = start_run(out, overwrite=True, same_run=same)
    assert plan.replacing and plan.work == tmp_path / ".model.overwrite" and not plan.resuming
    assert (out / "metrics.json").exists()  # the new run trains beside the old model


def test_resume_drops_history_rows_of_epochs_to_be_redone(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n")
    records.keep_history_before(path, 2)
    assert path.read_text().splitlines() == ["epoch,loss", "0,0.9", "1,0.8"]
    records.write_history_row(path, 1, {"loss": 0.5})  # an epoch recorded again replaces its row
    assert path.read_text().splitlines() == ["epoch,loss", "0,0.9", "1,0.5"]


def test_read_model_config_says_what_is_wrong(tmp_path):
    with pytest.raises(ModelFolderError, match="is not a folder"):
        read_model_config(tmp_path / "missing")
    with pytest.raises(ModelFolderError, match="no config.json"):
        read_model_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="cannot read"):
        read_model_config(tmp_path)
    (tmp_path / "config.json").write_text('{"units": 3}')
    with pytest.raises(ModelFolderError, match="which app"):
        read_model_config(tmp_path)


def test_files_docstring_examples_run():
    import nlp_lstm.files as files

    results = doctest.testmod(files)
    assert results.attempted > 0 and results.failed == 0


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    from nlp_lstm.files import atomic_replace

    target = tmp_path / "model.keras"
    target.write_text("good model")

    def broken_write(tmp):
        tmp.write_text("half a mod")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_replace(target, broken_write)
    assert target.read_text() == "good model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left behind
    atomic_replace(target, lambda tmp: tmp.write_text("new model"))
    assert target.read_text() == "new model"
    assert target.stat().st_mode & 0o777 == 0o644  # readable by a server, not only by its owner


def test_a_run_replacing_an_interrupted_one_trains_beside_its_model(tmp_path):
    from nlp_lstm.run_folder import begin_writing, finish_run

    out = tmp_path / "model"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "state.json").write_text("{}")
    (out / "model.keras").write_text("best model so far")
    with pytest.raises(OutputFolderError, match="other options"):
        start_run(out, overwrite=False, same_run=lambda folder: False)
    plan = start_run(out, overwrite=True, same_run=lambda folder: False)
    assert (plan.work, plan.resuming) == (tmp_path / ".model.overwrite", False)
    begin_writing(plan)
    assert (out / "model.keras").read_text() == "best model so far" and (out / "backup").exists()  # untouched
    (plan.work / "model.keras").write_text("new model")
    (plan.work / "metrics.json").write_text("{}")
    assert finish_run(plan) == out
    assert (out / "model.keras").read_text() == "new model" and not (out / "backup").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]  # the old one is gone
