"""Nothing lost, nothing silent: the real `nlp-lstm train` commands killed with SIGKILL at exact points
(the NLP_LSTM_FAULT hook), rerun, overwritten, run twice at once; folders whose files disagree.

Each app trains one uninterrupted reference run (tiny model, 3 epochs of 12 steps, a backup every 3
steps), shared by its tests: a resumed run must end as the reference does (epochs, history rows, the
learning rate at every epoch's end) without training a finished epoch again.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_aclimdb_files, write_tiny_aclimdb

from nlp_lstm import run_folder
from nlp_lstm.run_folder import ModelFolderError, OutputFolderError
from tests.nextword_helpers import toy_corpus_file

EPOCHS, STEPS, BACKUP_EVERY = 3, 12, 3
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
ENV.pop("NLP_LSTM_FAULT", None)


def sentiment_command(data: Path, out: Path, *extra: str) -> list[str]:
    # 96 training reviews in batches of 8: 12 steps an epoch.
    return ["nlp-lstm", "train", "sentiment", "--data", str(data), "--out", str(out), "--epochs", str(EPOCHS),
            "--patience", "5", "--max-tokens", "100", "--embedding-dim", "4", "--units", "3", "--batch-size", "8",
            "--max-length", "24", "--ngram-buckets", "512", "--backup-every", str(BACKUP_EVERY), *extra]  # fmt: skip


def nextword_command(corpus: Path, out: Path, *extra: str) -> list[str]:
    tokens = EPOCHS * STEPS * 4 * 8  # epochs x steps x batch x window
    return ["nlp-lstm", "train", "nextword", "--corpus", str(corpus), "--out", str(out), "--max-tokens", "60",
            "--embedding-dim", "4", "--units", "4", "--num-sampled", "8", "--window", "8", "--batch-size", "4",
            "--train-tokens", str(tokens), "--epochs", str(EPOCHS), "--patience", "5", "--val-fraction", "0.2",
            "--backup-every", str(BACKUP_EVERY), "--max-train-minutes", "none", *extra]  # fmt: skip


def run(command: list[str], fault: str | None = None, **env: str) -> subprocess.CompletedProcess:
    extra = {"NLP_LSTM_FAULT": fault} if fault else {}
    return subprocess.run(command, env={**ENV, **extra, **env}, capture_output=True, text=True, timeout=300)


def killed(command: list[str], fault: str) -> None:
    result = run(command, fault)
    assert result.returncode == -signal.SIGKILL, f"not killed at {fault}: {result.stderr[-2000:]}"


def history(out: Path) -> list[dict[str, str]]:
    if not (out / "history.csv").exists():
        return []
    with open(out / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


def epochs_of(out: Path) -> list[int]:
    return [int(row["epoch"]) for row in history(out)]


def learning_rates(out: Path) -> list[float]:
    return [float(row["learning_rate"]) for row in history(out)]


def state(out: Path) -> dict:
    return json.loads((out / "backup" / "state.json").read_text())


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*tmp*"))


class App:
    """One app's commands, its reference run, and how to read a verdict from a model folder."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = name, root
        if name == "sentiment":
            files = dict(tiny_aclimdb_files())
            for i in range(100):  # with the tiny set's 8, 108 training reviews: 97 train + 11 validation
                label = "pos" if i % 2 else "neg"
                words = "great wonderful moving" if i % 2 else "awful boring dull"
                files[f"train/{label}/{100 + i}_{7 if i % 2 else 2}.txt"] = f"review {i} {words} film {i % 7}".encode()
            self.data = write_tiny_aclimdb(root, files)
        else:
            self.data = toy_corpus_file(root, paragraphs=160)
        self.reference = root / "reference"
        self.training = subprocess.Popen(self.command(self.reference), env=ENV, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)  # fmt: skip

    def wait(self) -> App:
        _, stderr = self.training.communicate(timeout=300)
        assert self.training.returncode == 0, stderr[-3000:]
        return self

    def command(self, out: Path, *extra: str) -> list[str]:
        make = sentiment_command if self.name == "sentiment" else nextword_command
        return make(self.data, out, *extra)

    def verdict(self, folder: Path) -> np.ndarray:
        """What the model says: P(pos) of a few texts, or next-word probabilities after a few words."""
        if self.name == "sentiment":
            from nlp_lstm.sentiment.predict import predict_sentiment

            texts = ["A great and moving film.", "Dull, awful and boring.", "review 3"]
            return np.array([p.probability for p in predict_sentiment(folder, texts)])
        from nlp_lstm.nextword.model import load_nextword_folder

        loaded = load_nextword_folder(str(folder))
        ids = np.array([[2, 5, 6, 7]], "int64")
        return np.asarray(loaded.model.logits(loaded.model.features(ids)[0]))


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> dict[str, App]:
    """Both apps' reference trainings, started side by side (one core each)."""
    apps = {name: App(name, tmp_path_factory.mktemp(name)) for name in ("sentiment", "nextword")}
    return {name: app.wait() for name, app in apps.items()}


@pytest.fixture(params=["sentiment", "nextword"])
def app(request, reference_runs) -> App:
    return reference_runs[request.param]


def test_killed_at_each_point_then_rerun_ends_as_the_uninterrupted_run(app, tmp_path):
    out = tmp_path / "model"
    command = app.command(out)
    # 1. Inside the end-of-epoch save of model.keras (epoch 0 always saves: nothing is better yet).
    killed(command, "model-save")
    assert temporaries(out) and temporaries(out)[0].startswith(".model.keras.")  # the save was cut
    assert (state(out)["epoch"], state(out)["recorded"]) == (1, False)  # trained, backed up, not yet recorded
    # 2. Mid-epoch, after a step backup: the rerun first finishes epoch 0's record, then trains epoch 1.
    killed(command, "step-backup#2")
    assert not temporaries(out)
    assert (state(out)["epoch"], state(out)["step"]) == (1, 2 * BACKUP_EVERY)  # epoch 0 was not trained again
    assert epochs_of(out) == [0]
    # 3. Early in an epoch, before its first step backup.
    killed(command, "step:2:0")
    assert (state(out)["epoch"], state(out)["step"]) == (2, 0)
    assert epochs_of(out) == [0, 1]

    final = run(command)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "Traceback" not in final.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    reference = json.loads((app.reference / "metrics.json").read_text())
    assert metrics["epochs"] == reference["epochs"] == EPOCHS and metrics["resumed_at_epoch"] == 2
    assert epochs_of(out) == list(range(EPOCHS))  # each epoch's row once
    assert learning_rates(out) == pytest.approx(learning_rates(app.reference), rel=1e-6)  # the schedule ends alike
    assert not (out / "backup").exists() and not temporaries(out)
    assert np.all(np.isfinite(app.verdict(out)))  # the model loads and answers


def test_an_interrupted_overwrite_keeps_the_old_model_then_resumes(app, tmp_path, capsys):
    out = tmp_path / "model"
    shutil.copytree(app.reference, out)
    before = app.verdict(out)
    command = app.command(out, "--seed", "7", "--overwrite")
    killed(command, "step:1:4")  # after epoch 0 is recorded
    assert json.loads((out / "config.json").read_text())["command"].split()[:3] == ["nlp-lstm", "train", app.name]
    np.testing.assert_array_equal(app.verdict(out), before)  # the old model, whole and in use
    assert (out / "metrics.json").exists()
    from nlp_lstm.cli import main

    capsys.readouterr()
    assert main(app.command(out, "--seed", "7")[1:]) == 2  # without --overwrite: refused, told how to finish it
    assert "add --overwrite to finish it" in capsys.readouterr().err

    final = run(command)
    assert final.returncode == 0, final.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["resumed_at_epoch"] == 1
    assert json.loads((out / "config.json").read_text())[app.name]["seed"] == 7
    assert epochs_of(out) == list(range(EPOCHS))
    assert not np.array_equal(app.verdict(out), before)  # the new model replaced the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]  # no staging folder left


def test_a_second_training_into_a_busy_folder_is_refused_and_the_first_goes_on(app, tmp_path, capsys):
    from nlp_lstm.cli import main

    out, gate = tmp_path / "model", tmp_path / "gate"
    command = app.command(out)
    first = subprocess.Popen(command, env={**ENV, "NLP_LSTM_FAULT": "wait@step:0:0", "NLP_LSTM_FAULT_GATE": str(gate)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{gate}.waiting").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not start training"
            time.sleep(0.05)
        capsys.readouterr()
        assert main(command[1:]) == 2  # the second run: in this process, whose lock is not the first's
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "is being written by another training run" in lines[0], lines
        gate.touch()
        _, stderr = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, stderr[-3000:]
    assert epochs_of(out) == list(range(EPOCHS)) and (out / "metrics.json").exists()


def test_a_shuffled_vocabulary_is_refused_in_one_line(app, tmp_path, capsys):
    from nlp_lstm.cli import main

    out = tmp_path / "model"
    shutil.copytree(app.reference, out)
    lines = (out / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    random.Random(0).shuffle(lines)  # same words, same count: only the order tells
    (out / "vocabulary.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ModelFolderError, match="not the vocabulary this model was trained with"):
        app.verdict(out)
    if app.name == "sentiment":
        command = ["predict", "--model", str(out), "fine"]
    else:
        command = ["export", "--model", str(out), "--out", str(tmp_path / "e")]
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]  # the command that trains it again


def test_a_model_of_another_run_beside_the_vocabulary_is_refused(app, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(app.reference, out)
    record = json.loads((out / "checkpoint.json").read_text())
    (out / "checkpoint.json").write_text(json.dumps({**record, "vocabulary_sha256": "0" * 64}))
    with pytest.raises(ModelFolderError, match="saved by another training run"):
        app.verdict(out)


def test_a_folder_written_before_the_hash_loads_with_one_warning(app, tmp_path, capsys):
    out = tmp_path / "model"
    shutil.copytree(app.reference, out)
    config = json.loads((out / "config.json").read_text())
    del config["vocabulary_sha256"]
    (out / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert np.all(np.isfinite(app.verdict(out)))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "vocabulary_sha256" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning:")


def test_a_loss_that_turns_nan_stops_training_and_keeps_the_last_good_state(tmp_path):
    import keras

    from nlp_lstm.run_folder import TrainingDiverged
    from nlp_lstm.training import FitConfig, fit
    from tests.test_training import tiny_problem

    class Poison(keras.callbacks.Callback):  # the weights turn NaN at the start of the second epoch
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                for weight in self.model.trainable_weights:
                    weight.assign(weight * float("nan"))

    model, train, val = tiny_problem()
    config = FitConfig(epochs=3, patience=None, backup_every=3, verbose=0, tensorboard=False)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 1.*lower --learning-rate"):
        fit(model, train, val, tmp_path, config, callbacks=[Poison()])
    assert (state(tmp_path)["epoch"], state(tmp_path)["step"]) == (1, 0)  # the backup of the last good epoch
    saved = keras.models.load_model(tmp_path / "model.keras")
    assert all(np.all(np.isfinite(w)) for w in saved.get_weights())
    assert epochs_of(tmp_path) == [0]


def test_training_that_diverges_exits_1_with_one_line(monkeypatch, capsys, tmp_path):
    import nlp_lstm.sentiment.train
    from nlp_lstm.cli import main
    from nlp_lstm.run_folder import TrainingDiverged

    def diverge(*args, **kwargs):
        raise TrainingDiverged("the training loss became nan at epoch 2, step 1; ...")

    monkeypatch.setattr(nlp_lstm.sentiment.train, "train_sentiment", diverge)
    assert main(["train", "sentiment", "--out", str(tmp_path / "m"), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loss became nan" in err[0]


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    folder = tmp_path / "model"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nlp_lstm.run_folder import lock_folder; "
                               f"lock_folder({str(folder)!r}); print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        probe = [sys.executable, "-c", f"from nlp_lstm.run_folder import lock_folder; lock_folder({str(folder)!r})"]
        busy = subprocess.run(probe, capture_output=True, text=True)
        assert busy.returncode != 0 and f"(process {holder.pid})" in busy.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert subprocess.run(probe, capture_output=True).returncode == 0  # no stale lock after kill -9
    finally:
        holder.kill()


def test_an_overwrite_cut_between_two_renames_is_repaired_on_the_next_start(tmp_path):
    out, retired, staging = tmp_path / "model", tmp_path / ".model.replaced", tmp_path / ".model.overwrite"
    retired.mkdir()
    (retired / "model.keras").write_text("old")
    staging.mkdir()
    (staging / "model.keras").write_text("new")
    (staging / "metrics.json").write_text("{}")  # the new model was complete: the swap is completed
    with pytest.raises(OutputFolderError, match="already holds a trained model"):
        run_folder.start_run(out, overwrite=False, same_run=lambda folder: True)
    assert (out / "model.keras").read_text() == "new" and not retired.exists()
