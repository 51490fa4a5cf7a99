"""Training conveniences shared by both apps: `model.fit` with everything a long run needs.

API (the sentiment and next-word apps both use it):

    FitConfig(epochs, seed, monitor, mode, patience, backup_every, ..., dry_run)
        How long to train, what "best" means, how often to back up. Frozen.
    fit(model, train_ds, val_ds, out_dir, config, callbacks=()) -> FitResult
        `model.fit` on a compiled model, resuming from `out_dir/backup/` when an earlier run of the
        same command was killed. Writes in out_dir:
            model.keras       the best model so far by `config.monitor`, saved atomically each time
                              it improves; `fit` leaves these best weights in `model` when it returns
            checkpoint.json   {"monitor", "best", "epoch", "vocabulary_sha256"}: what model.keras holds
            history.csv       one row per epoch, with `epoch_time_s`; each epoch's row written once
            curves.png        loss and metric curves, redrawn after every epoch
            logs/             TensorBoard logs (`tensorboard --logdir out_dir/logs`)
            backup/           the training state (weights and optimizer) and its state.json; kept after
                              the last epoch, until the app calls `run_folder.finish_run`
    run_vocabulary, worker_folder, cluster_vocabulary: the run's vocabulary, alone or in a cluster.
    (atomic writes are `nlp_lstm.files`'; history.csv, curves.png and metrics.json `nlp_lstm.records`')
    TrainingDiverged: the loss became NaN or infinite; the last good backup and model stay.

Resuming: a backup is written every `backup_every` steps and at each epoch's end, atomically
(weights-<n>.weights.h5, then state.json naming it). A rerun restores the weights and the optimizer
and starts at the backed-up epoch: an interrupted epoch runs again from its first batch, from the
weights of its last step backup, with the optimizer's step count set back to the epoch's start, so
that the learning-rate schedule ends where an uninterrupted run's ends. The epoch-end backup is
written before the epoch is recorded (best checkpoint, history row, curves) and carries its logs: a
run killed while recording finishes the record on resume and never trains that epoch again. Early
stopping counts its patience from the resumed epoch; the best checkpoint remembers its best value
across runs (checkpoint.json).

Nothing here knows about IMDB or about either app's model; the folder's lifecycle (lock, resume or
refuse, overwrite, finish) is `nlp_lstm.run_folder`'s.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from nlp_lstm import faults
from nlp_lstm.distribute import Role, StrategyError, role_of, share_from_chief
from nlp_lstm.files import atomic_replace, atomic_save_model, atomic_write_json, atomic_write_text
from nlp_lstm.progress import ProgressCallback
from nlp_lstm.records import keep_history_before, plot_history, training_time_s, write_history_row
from nlp_lstm.run_folder import (
    BACKUP_DIR,
    BACKUP_STATE_FILE,
    CHECKPOINT_FILE,
    CURVES_FILE,
    HISTORY_FILE,
    LOGS_DIR,
    MODEL_FILE,
    VOCABULARY_FILE,
    VOCABULARY_HASH_KEY,
    OutputFolderError,
    TrainingDiverged,
    has_backup,
    lock_folder,
    remove_stale_temporaries,
    vocabulary_sha256,
)
from nlp_lstm.text import VectorizerConfig, load_vocabulary, save_vocabulary, vectorizer_from_vocabulary


@dataclass(frozen=True)
class FitConfig:
    """How `fit` trains.

    Args:
        epochs: Epochs in all, counting those done before a resume.
        seed: Seeds Python, NumPy, TensorFlow and Keras (`keras.utils.set_random_seed`) before training.
        monitor: The logged metric that picks the best checkpoint and drives early stopping.
        mode: "max" if a larger `monitor` is better (accuracy), "min" if smaller is (loss, perplexity).
        patience: Epochs without improvement before early stopping; None never stops early.
        backup_every: Back up the training state every this many steps (and at every epoch's end).
        steps_per_epoch: Train on at most this many batches per epoch (None: the whole dataset).
        validation_steps: Validate on at most this many batches (None: the whole dataset).
        dry_run: One epoch of one training and one validation step, for CI (overrides the three above).
        verbose: The progress display (`nlp_lstm.progress.ProgressCallback`, not Keras's): 1 a live bar
            within each epoch, 2 a line every 30 s within each epoch, 0 silent; both 1 and 2 print a line
            per epoch with its logs. None picks 1 on a terminal and 2 otherwise (a log file would fill
            with bar redraws).
        units_per_step: What one training step is worth in `units`, for the rate the progress shows
            (e.g. batch size x window tokens); None shows steps/s.
        units: The name of those units ("tokens", "reviews").
        tensorboard: Write TensorBoard logs (skipped, with a note, when the tensorboard package is missing).
        max_minutes: Stop after the epoch when one more epoch would take the time spent in epochs
            (counting those before a resume) past this many minutes; None trains `epochs` epochs.

    Example:

    >>> from nlp_lstm.training import FitConfig
    >>> FitConfig(epochs=3, monitor="val_loss", mode="min").patience
    2
    """

    epochs: int = 5
    seed: int = 1337
    monitor: str = "val_accuracy"
    mode: str = "max"
    patience: int | None = 2
    backup_every: int = 50
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    dry_run: bool = False
    verbose: int | None = None
    tensorboard: bool = True
    max_minutes: float | None = None
    units_per_step: float | None = None
    units: str = "examples"

    def __post_init__(self) -> None:
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be None or > 0, got {self.max_minutes}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be None or >= 0, got {self.patience}")
        if not (isinstance(self.backup_every, int) and self.backup_every >= 1):
            raise ValueError(f"backup_every must be an int >= 1, got {self.backup_every!r}")
        for name in ("steps_per_epoch", "validation_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")
        if self.units_per_step is not None and not self.units_per_step > 0:
            raise ValueError(f"units_per_step must be None or > 0, got {self.units_per_step}")

    def progress_display(self) -> int:
        """`verbose` as set, or 1 (a live bar) on a terminal and 2 (plain lines) otherwise; Keras reads it alike."""
        return self.verbose if self.verbose is not None else (1 if sys.stdout.isatty() else 2)


@dataclass(frozen=True)
class FitResult:
    """What `fit` did.

    Attributes:
        history: This run's logs per epoch (Keras's `History.history`), without resumed epochs.
        initial_epoch: The epoch this run started at (0 unless it resumed).
        resumed: Whether this run continued an interrupted one (from its backup, maybe mid-epoch 0).
        epochs_done: Epochs completed in all, counting those before a resume.
        best: The best `monitor` value, that of the weights `fit` left in the model; None if no
            epoch produced a number.
        best_epoch: The (0-based) epoch of `best`.
        wall_time_s: Seconds this run of `fit` took.
        checkpoint: Path of the best model file.
    """

    history: dict[str, list[float]] = field(repr=False)
    initial_epoch: int
    resumed: bool
    epochs_done: int
    best: float | None
    best_epoch: int | None
    wall_time_s: float
    checkpoint: Path


def run_vocabulary(
    out: Path, resuming: bool, build: Callable[[], keras.layers.TextVectorization]
) -> keras.layers.TextVectorization:
    """The run's vectorizer: the saved vocabulary when resuming, else `build()`, saved once in `out`."""
    path = out / VOCABULARY_FILE
    if resuming and path.exists():
        return vectorizer_from_vocabulary(load_vocabulary(path), VectorizerConfig(None))
    vectorizer = build()
    save_vocabulary(vectorizer, path)
    return vectorizer


def worker_folder(out_dir: str | os.PathLike, role: Role) -> Path:
    """Where a worker other than the chief keeps its backup: `out_dir/workers/<task>/`, so that
    workers sharing the chief's folder never write over each other (or over the chief's files)."""
    folder = Path(out_dir).expanduser() / "workers" / role.task.replace(":", "-")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError(f"cannot write the worker folder {folder} ({error.strerror or error})") from error
    lock_folder(folder)
    return folder


def cluster_vocabulary(
    strategy: tf.distribute.Strategy, out_dir: str | os.PathLike, out: Path, resuming: bool,
    build: Callable[[], keras.layers.TextVectorization],
) -> keras.layers.TextVectorization:  # fmt: skip
    """`run_vocabulary` for a run under `strategy`: the chief builds (or reloads) the vocabulary once
    and sends it, with the epoch its backup resumes at, to every worker; a worker then lines its
    own backup up with the chief's, so that all resume at the same step.

    Args:
        strategy: The run's strategy (outside a cluster this is just `run_vocabulary`).
        out_dir: The --out every process was given (the chief's folder when it is shared storage).
        out: This process's folder: the chief's model folder, or a `worker_folder`.
        resuming: The chief's decision (from `start_run`); ignored on other workers.
        build: Builds the vocabulary from the training text (called on the chief only).
    """
    role = role_of(strategy)
    if role.workers == 1:
        return run_vocabulary(out, resuming, build)
    plan = None
    if role.chief:
        vectorizer = run_vocabulary(out, resuming, build)
        plan = json.dumps({"vocabulary": (out / VOCABULARY_FILE).read_text(encoding="utf-8"),
                           "resume_epoch": _backed_up_epoch(out) if resuming else None,
                           "backup": str((out / BACKUP_DIR).absolute())})  # fmt: skip
    shared = json.loads(share_from_chief(strategy, plan))
    if role.chief:
        return vectorizer
    atomic_write_text(out / VOCABULARY_FILE, shared["vocabulary"])
    _line_up_backup(Path(shared["backup"]), out, shared["resume_epoch"], role)
    return vectorizer_from_vocabulary(load_vocabulary(out / VOCABULARY_FILE), VectorizerConfig(None))


def _line_up_backup(chief_backup: Path, out: Path, epoch: int | None, role: Role) -> None:
    """Makes a worker's backup the chief's: a copy when the chief's folder is visible (shared
    storage), else its own backup, which must then stand at the chief's epoch."""
    own = out / BACKUP_DIR
    if epoch is None:  # the chief starts fresh
        shutil.rmtree(own, ignore_errors=True)
        return
    if chief_backup.is_dir() and chief_backup.resolve() != own.resolve():
        shutil.rmtree(own, ignore_errors=True)
        shutil.copytree(chief_backup, own)
        return
    if not has_backup(out) or _backed_up_epoch(out) != epoch:
        have = f"epoch {_backed_up_epoch(out)}" if has_backup(out) else "no backup"
        raise StrategyError(
            f"{role.task} cannot resume with the chief: the chief resumes at epoch {epoch}, this worker has "
            f"{have} in {own} and cannot see the chief's {chief_backup}; give all workers the same --out on "
            f"shared storage, or start the run over with --overwrite"
        )


def _backed_up_epoch(out_dir: Path) -> int:
    """The epoch a resumed run starts at (the backup's state.json), 0 if unknown."""
    state = _Backup(out_dir).read()
    return int(state["epoch"]) if state else 0


class _Backup:
    """The training state in `folder/backup/`: weights-<n>.weights.h5 (the model's weights and the
    optimizer's) and state.json, which names the weights file and says where training stands:

        {"weights": "weights-3.weights.h5", "epoch": 2, "step": 0, "recorded": false,
         "logs": {...}, "finished": false}

    `epoch` epochs are complete and `step` batches of the next; at an epoch's end, step is 0, `logs`
    are that epoch's and `recorded` says whether its checkpoint, history row and curves are written.
    Writes are atomic: the weights go to a new file, then state.json is replaced to name it (a kill
    in between leaves the old state whole), then older weight files are deleted.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder) / BACKUP_DIR

    def read(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.folder / BACKUP_STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or not (self.folder / str(state.get("weights"))).is_file():
            return None
        return state

    def save(self, model: keras.Model, **state: Any) -> None:
        previous = self.read()
        number = int(previous.get("number", 0)) + 1 if previous else 1
        name = f"weights-{number}.weights.h5"
        atomic_replace(self.folder / name, lambda tmp: model.save_weights(tmp), suffix=".tmp.weights.h5")
        atomic_write_json(self.folder / BACKUP_STATE_FILE, {**state, "weights": name, "number": number})
        for old in self.folder.glob("weights-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def mark(self, **changes: Any) -> None:
        """Updates state.json's fields (the weights stay)."""
        state = self.read()
        if state is not None:
            atomic_write_json(self.folder / BACKUP_STATE_FILE, {**state, **changes})

    def restore(self, model: keras.Model, state: dict[str, Any]) -> None:
        """Loads the backed-up weights and optimizer state into `model`."""
        strategy = getattr(model, "_distribute_strategy", None) or tf.distribute.get_strategy()
        with strategy.scope():
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(self.folder / state["weights"])


class _AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the model atomically whenever `monitor` improves on the best so far (kept in a JSON file).

    ModelCheckpoint writes its file in place, so a kill mid-save would destroy the best model. The
    record names the vocabulary the model was saved with (its hash), so that a loader can tell a model
    from one run beside a vocabulary from another.
    """

    def __init__(self, path: Path, record: Path, monitor: str, mode: str, best: float | None):
        super().__init__()
        self.path, self.record, self.monitor, self.mode = path, record, monitor, mode
        self.best = best
        self.best_epoch: int | None = None

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"monitor {self.monitor!r} is not among the logged values {sorted(logs)}: pass a "
                f"validation dataset and compile the model with that metric"
            )
        value = float(logs[self.monitor])
        if self._improves(value):
            atomic_save_model(self.model, self.path)
            self.best, self.best_epoch = value, epoch
            record = {"monitor": self.monitor, "best": value, "epoch": epoch}
            vocabulary = self.path.parent / VOCABULARY_FILE
            if vocabulary.exists():
                record[VOCABULARY_HASH_KEY] = vocabulary_sha256(vocabulary)
            atomic_write_json(self.record, record)


def _non_finite(logs: Mapping[str, Any] | None, names: Sequence[str] | None = None) -> tuple[str, float] | None:
    """The first logged value of `names` (default: all) that is NaN or infinite, as (name, value)."""
    for name, value in (logs or {}).items():
        if names is not None and name not in names:
            continue
        try:
            number = float(value)  # Python or NumPy scalars alike
        except (TypeError, ValueError):
            continue
        if not math.isfinite(number):
            return name, number
    return None


class _Recorder(keras.callbacks.Callback):
    """The run's own bookkeeping, first among the callbacks.

    Each step: stops training if the loss is NaN or infinite (before a backup could keep it), and backs
    up the training state every `backup_every` steps. Each epoch's end: times the epoch, checks its
    logs, backs it up with its logs (state "recorded": false), then records it: best checkpoint,
    history row, curves (`record`, which a resumed run calls for an epoch backed up but not recorded).
    """

    def __init__(self, out: Path, backup: _Backup, backup_every: int, checkpoint: _AtomicBestCheckpoint | None):
        super().__init__()
        self.out, self.backup, self.backup_every, self.checkpoint = out, backup, backup_every, checkpoint
        self.epoch, self.start = 0, time.perf_counter()

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self.checkpoint is not None:
            self.checkpoint.set_model(model)

    def _diverged(self, name: str, value: float, where: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"the training {name} became {value} {where}; training stopped, and the last good backup and "
            f"model.keras stay in {self.out}: lower --learning-rate and train again (with --overwrite)"
        )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.start = epoch, time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        bad = _non_finite(logs, ("loss",))
        if bad:
            raise self._diverged(*bad, f"at epoch {self.epoch + 1}, step {batch + 1}")
        if faults.armed():  # tests only: no string is built on this per-step path otherwise
            faults.reached(f"step:{self.epoch}:{batch}")
        done, steps = batch + 1, self.params.get("steps")
        if done % self.backup_every == 0 and (steps is None or done < steps):  # the epoch's end backs up anyway
            self.backup.save(self.model, epoch=self.epoch, step=done, recorded=True, finished=False)
            faults.reached("step-backup")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        logs["epoch_time_s"] = time.perf_counter() - self.start
        if getattr(self.model, "optimizer", None) is not None:  # where the schedule stands (a resume must end alike)
            logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        bad = _non_finite(logs)
        if bad:
            raise self._diverged(*bad, f"at the end of epoch {epoch + 1}")
        values = {key: float(value) for key, value in logs.items() if isinstance(value, (int, float))}
        self.backup.save(self.model, epoch=epoch + 1, step=0, recorded=False, logs=values, finished=False)
        self.record(epoch, values)

    def record(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Writes what an epoch leaves in the folder (on the chief): best checkpoint, history row, curves."""
        if self.checkpoint is None:
            return
        self.checkpoint.on_epoch_end(epoch, dict(logs))
        write_history_row(self.out / HISTORY_FILE, epoch, logs)
        plot_history(self.out / HISTORY_FILE, self.out / CURVES_FILE)


class _Commit(keras.callbacks.Callback):
    """Last among the callbacks: marks the epoch's backup recorded, and finished when training stops."""

    def __init__(self, backup: _Backup):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        finished = bool(self.model.stop_training) or epoch + 1 >= self.params["epochs"]
        self.backup.mark(recorded=True, finished=finished)


class _TimeBudget(keras.callbacks.Callback):
    """Stops training after an epoch when another one, as long as the average so far, would overrun."""

    def __init__(self, budget_s: float, spent_before_s: float):
        super().__init__()
        self.budget_s, self.spent_before_s = budget_s, spent_before_s

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start, self.epochs = time.perf_counter(), 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs += 1
        spent_here = time.perf_counter() - self.start
        per_epoch = spent_here / self.epochs
        if self.spent_before_s + spent_here + per_epoch > self.budget_s:
            self.model.stop_training = True
            print(
                f"stopping after epoch {epoch + 1}: another (~{per_epoch:.0f} s) would pass the time budget "
                f"of {self.budget_s / 60:.0f} min",
                file=sys.stderr,
            )


def _tensorboard_installed() -> bool:
    """Whether tf.summary can write (it needs the tensorboard package, which TensorFlow no longer pulls in)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return True
    print(
        "note: the tensorboard package is not installed; no TensorBoard logs (pip install tensorboard)", file=sys.stderr
    )
    return False


def _limited(ds: tf.data.Dataset | None, steps: int | None) -> tf.data.Dataset | None:
    """`ds` cut to `steps` batches, with a known number of batches."""
    if ds is None:
        return None
    if steps is not None:
        ds = ds.take(steps)
    if int(ds.cardinality()) != tf.data.UNKNOWN_CARDINALITY:
        return ds
    # Bucketed batches have no static count, so Keras would warn that the data "ran out" after every
    # first epoch and show no total in the progress bar. One pass counts them: the pipeline's
    # .cache() fills on it, so the first epoch does not pay for it again. The count does not depend
    # on the shuffle order (each length bucket ends with one partial batch, whatever the order).
    count = int(ds.reduce(tf.constant(0, tf.int64), lambda count, *_: count + 1))
    return ds.apply(tf.data.experimental.assert_cardinality(count))


def fit(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    out_dir: str | os.PathLike,
    config: FitConfig,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    chief: bool = True,
) -> FitResult:
    """Trains a compiled, built model with checkpoints, early stopping, logs, curves and resume.

    Rerunning the same code after the process was killed (even kill -9, mid-epoch) resumes from
    `out_dir/backup/`. Without a backup, the run starts fresh and replaces the files listed at the
    top of this module. The backup stays when `fit` returns (a rerun then trains nothing): the app
    deletes it once its results are saved (`run_folder.finish_run`).

    Args:
        model: A compiled model, built (e.g. a functional model), logging `config.monitor`.
        train_ds: Batches of (inputs, targets) for training.
        val_ds: Batches of (inputs, targets) for validation.
        out_dir: The output folder; the caller holds its lock (`run_folder.start_run`), if others may write it.
        config: Epochs, seed, what to monitor, how often to back up.
        callbacks: More Keras callbacks, run after this module's own and before the backup is committed.
        chief: False for the other workers of a multi-worker run: they train in step with the chief
            (same epochs, same early stop) but write nothing to `out_dir` except their backup.

    Returns:
        A FitResult; `model` holds the weights of the best checkpoint.

    Raises:
        TrainingDiverged: The loss became NaN or infinite.

    Example (``model``, ``train_ds``, ``val_ds``: a tiny model and data the test makes):

    >>> import pathlib, tempfile
    >>> from nlp_lstm.training import FitConfig, fit
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> result = fit(model, train_ds, val_ds, out, FitConfig(epochs=2, verbose=0, tensorboard=False))
    >>> result.epochs_done, result.resumed, sorted(p.name for p in out.iterdir())
    (2, False, ['backup', 'checkpoint.json', 'curves.png', 'history.csv', 'model.keras'])
    """
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    if config.dry_run:
        config = replace(config, epochs=1, steps_per_epoch=1, validation_steps=1)
    keras.utils.set_random_seed(config.seed)
    checkpoint, record = out / MODEL_FILE, out / CHECKPOINT_FILE
    history_csv, logs_dir = out / HISTORY_FILE, out / LOGS_DIR
    train = _limited(train_ds, config.steps_per_epoch)
    val = _limited(val_ds, config.validation_steps)
    steps = int(train.cardinality())

    backup = _Backup(out)
    best_checkpoint = _AtomicBestCheckpoint(checkpoint, record, config.monitor, config.mode, None) if chief else None
    recorder = _Recorder(out, backup, config.backup_every, best_checkpoint)
    recorder.set_model(model)
    state = backup.read()
    initial_epoch, finished = 0, False
    if state is None:
        shutil.rmtree(out / BACKUP_DIR, ignore_errors=True)  # none, or unreadable: start afresh
        if chief:  # nothing of an earlier run may mix into this one's history and logs
            for stale in (history_csv, record):
                stale.unlink(missing_ok=True)
            shutil.rmtree(logs_dir, ignore_errors=True)
    else:
        backup.restore(model, state)
        initial_epoch, finished = int(state["epoch"]), bool(state.get("finished"))
        if steps > 0:  # an interrupted epoch runs again in full: its steps count from the epoch's start
            model.optimizer.iterations.assign(initial_epoch * steps)
        if chief:
            try:
                saved = json.loads(record.read_text(encoding="utf-8"))
                best_checkpoint.best = float(saved["best"]) if saved.get("monitor") == config.monitor else None
            except (OSError, ValueError, KeyError, TypeError):
                best_checkpoint.best = None
            recorded = bool(state.get("recorded"))
            keep_history_before(history_csv, initial_epoch if recorded else initial_epoch - 1)
            if not recorded:  # killed while recording its last epoch: finish that, do not train it again
                recorder.record(initial_epoch - 1, state.get("logs") or {})
        backup.mark(recorded=True, finished=finished or initial_epoch >= config.epochs)

    own: list[keras.callbacks.Callback] = [recorder]
    if config.patience is not None:  # on every worker: the validation metrics are the cluster's, so all stop together
        own.append(
            keras.callbacks.EarlyStopping(
                monitor=config.monitor, mode=config.mode, patience=config.patience, restore_best_weights=True
            )
        )
    if config.max_minutes is not None:  # the apps refuse it in a cluster, where clocks would disagree
        own.append(_TimeBudget(config.max_minutes * 60, training_time_s(out) if state else 0.0))
    if chief and config.tensorboard and _tensorboard_installed():
        own.append(keras.callbacks.TensorBoard(str(logs_dir), write_graph=False, profile_batch=0))
    display = config.progress_display()
    progress = []
    if display:  # ours, not Keras's: Keras's line-per-epoch display says nothing for the minutes an epoch runs
        val_steps = int(val.cardinality()) if val is not None else -1
        progress.append(ProgressCallback(
            live=display == 1, units_per_step=config.units_per_step, units=config.units,
            validation_steps=val_steps if val_steps > 0 else None,
        ))  # fmt: skip
    history: dict[str, list[float]] = {}
    epochs_run = 0
    if not finished and initial_epoch < config.epochs:
        try:
            keras_history = model.fit(
                train,
                validation_data=val,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                callbacks=[*own, *callbacks, *progress, _Commit(backup)],
                verbose=0,
                shuffle=False,  # a tf.data pipeline shuffles itself; Keras would only warn
            )
        finally:
            for callback in progress:
                callback.clear()  # an error or Ctrl-C is not printed after a half-drawn bar
        history = {k: [float(v) for v in values] for k, values in keras_history.history.items()}
        epochs_run = len(keras_history.epoch)
    if (
        chief and record.exists() and checkpoint.exists()
    ):  # the record: the checkpoint is of this run (or the resumed one)
        model.load_weights(checkpoint)  # the best weights, whichever run found them
    saved = json.loads(record.read_text(encoding="utf-8")) if chief and record.exists() else {}
    if chief and epochs_run == 0:  # resumed after the last epoch: no epoch drew the curves this run
        plot_history(history_csv, out / CURVES_FILE)
    return FitResult(
        history=history,
        initial_epoch=initial_epoch,
        resumed=state is not None,
        epochs_done=initial_epoch + epochs_run,
        best=saved.get("best"),
        best_epoch=saved.get("epoch"),
        wall_time_s=time.perf_counter() - start,
        checkpoint=checkpoint,
    )
