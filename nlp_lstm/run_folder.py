"""The model folder contract, shared by both apps: one writer, resume, atomic overwrite, checks on load.

A model folder (e.g. saved_models/nextword/) holds what a training run wrote:

    model.keras       the best model so far (training.fit saves it atomically)
    vocabulary.txt    the vocabulary, built once from the training text
    config.json       {"app", the app's configs, "vocabulary_sha256", "command"}: what the run was
    checkpoint.json   {"monitor", "best", "epoch", "vocabulary_sha256"}: what model.keras holds
    history.csv, curves.png, logs/
    backup/           the training state while a run is unfinished (training.fit); gone when it ends
    metrics.json      written last: its presence marks a finished model

The rules, for both apps:
- One writer: a run holds an exclusive lock on `<parent>/.<name>.lock` (fcntl.flock) from its first
  check to its last write. The OS drops it when the process dies, kill -9 included, so no stale lock
  is left; a second run into the same folder is refused at once. Locks are for local disks (flock on
  network file systems is not reliable); in a multi-worker cluster each process locks its own folder
  (the chief `--out`, a worker its `workers/worker-<i>/`).
- Resume: a folder with a backup of the same run (`same_run`) resumes; one of other options is refused.
- Atomic overwrite: a run that replaces a model trains in the sibling `<parent>/.<name>.overwrite/`
  and swaps it in when done (`finish_run`: an atomic exchange of the two names where the OS has one,
  renameat2 on Linux), so an interrupted overwrite leaves the old model whole and in use; rerunning
  it resumes the new run there.
- Checked on load: the vocabulary's hash must be the one config.json and checkpoint.json name, so a
  model never meets another run's vocabulary (a folder written before the hash loads with a warning).

Nothing here imports TensorFlow: the CLI may use it before loading any model.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_lstm._version import __version__

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
VOCABULARY_FILE = "vocabulary.txt"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
CHECKPOINT_FILE = "checkpoint.json"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
BACKUP_STATE_FILE = "state.json"
VOCABULARY_HASH_KEY = "vocabulary_sha256"


class OutputFolderError(OSError):
    """An output folder that cannot be used (not writable, busy, or holding a model that would be lost)."""


class ModelFolderError(Exception):
    """A model folder that cannot be used: missing files, another app's model, a corrupt file."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: training stopped, the last good backup and model stay."""


# ---- one writer per folder ----

# The open lock files of this process, by folder: a lock lives as long as its file stays open.
_held_locks: dict[Path, int] = {}


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of `folder`: beside it, so that it stays put when the folder is swapped."""
    folder = Path(folder).expanduser().absolute()
    return folder.parent / f".{folder.name}.lock"


def lock_folder(folder: str | os.PathLike) -> None:
    """Takes the exclusive lock on `folder` for the rest of this process (again: a no-op).

    Raises:
        OutputFolderError: Another process holds it, or the lock file cannot be made.

    Example:

    >>> import pathlib, subprocess, sys, tempfile
    >>> from nlp_lstm.run_folder import lock_folder
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> lock_folder(folder)
    >>> other = f"from nlp_lstm.run_folder import lock_folder; lock_folder({str(folder)!r})"
    >>> "another training run" in subprocess.run([sys.executable, "-c", other], capture_output=True, text=True).stderr
    True
    """
    path = lock_path(folder)
    key = path.parent.resolve() / path.name if path.parent.exists() else path
    if key in _held_locks:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise OutputFolderError(
            f"cannot write to the output folder {Path(folder)} ({error.strerror or error}); pass --out with a "
            f"folder you can write to"
        ) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise OutputFolderError(
            f"{Path(folder)} is being written by another training run (process {holder}); wait for it to end, "
            f"or pass --out another folder"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held_locks[path.parent.resolve() / path.name] = fd


def unlock_folder(folder: str | os.PathLike) -> None:
    """Releases this process's lock on `folder`, if it holds one (the file stays: deleting it would race)."""
    path = lock_path(folder)
    fd = _held_locks.pop(path.parent.resolve() / path.name, None)
    if fd is not None:
        os.close(fd)


def unlock_all() -> None:
    """Releases every lock this process holds (the CLI, after each command)."""
    while _held_locks:
        os.close(_held_locks.popitem()[1])


# ---- starting, resuming, replacing, finishing a run ----


def staging_folder(out: str | os.PathLike) -> Path:
    """Where a run that replaces the model in `out` trains until it is done."""
    out = Path(out).expanduser().absolute()
    return out.parent / f".{out.name}.overwrite"


def _retired_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.replaced"


def has_backup(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds the backup of an unfinished run (which the next identical run resumes)."""
    return (Path(folder) / BACKUP_DIR / BACKUP_STATE_FILE).is_file()


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Deletes the temporary files of atomic writes that a killed process left in `folder` (and backup/).

    Only call it holding the folder's lock: no other writer can be midway through a write.
    """
    for directory in (Path(folder), Path(folder) / BACKUP_DIR):
        if directory.is_dir():
            for path in directory.glob(".*.tmp*"):
                path.unlink(missing_ok=True)


@dataclass(frozen=True)
class RunPlan:
    """Where a training run writes.

    Attributes:
        out: The model folder the user named.
        work: Where this run writes: `out`, or `staging_folder(out)` when it replaces a model there.
        resuming: Whether `work` holds a backup of this very run, to go on from.
    """

    out: Path
    work: Path
    resuming: bool

    @property
    def replacing(self) -> bool:
        return self.work != self.out


def _probe_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OutputFolderError(
            f"cannot write to the output folder {folder} ({error.strerror or error}); pass --out with a "
            f"folder you can write to"
        ) from error


def _saved_command(folder: Path) -> str | None:
    """The command line that started the run in `folder` (config.json's "command"), if it says."""
    try:
        command = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, str) and command else None


def _recover_swap(out: Path) -> None:
    """Completes or undoes a swap that was cut between its two renames (where no atomic exchange exists)."""
    retired, staging = _retired_folder(out), staging_folder(out)
    if not out.exists() and retired.exists():
        os.rename(staging if (staging / METRICS_FILE).exists() else retired, out)
    shutil.rmtree(retired, ignore_errors=True)


def start_run(out_dir: str | os.PathLike, overwrite: bool, same_run: Callable[[Path], bool]) -> RunPlan:
    """Locks the output folder of a training run and decides where the run writes and whether it resumes.

    Args:
        out_dir: The model folder to write.
        overwrite: Replace a finished model, or an interrupted run of other options, in `out_dir`.
        same_run: Whether a folder's config.json describes this very run (so its backup may resume).

    Returns a RunPlan; the lock stays held until `finish_run` (or the process's end). Nothing in
    `out_dir` changes here (but for the temporaries of a killed process) until `begin_writing`.

    Raises:
        OutputFolderError: The folder cannot be written, another run writes it, it holds a finished
            model (unless `overwrite`), or an interrupted run of other options (unless `overwrite`).
    """
    out = Path(out_dir).expanduser().absolute()
    lock_folder(out)
    try:
        return _plan_run(out, overwrite, same_run)
    except BaseException:
        unlock_folder(out)  # refused: the folder is free for the next try
        raise


def _plan_run(out: Path, overwrite: bool, same_run: Callable[[Path], bool]) -> RunPlan:
    _recover_swap(out)
    _probe_writable(out)
    staging = staging_folder(out)
    for folder in (out, staging):
        remove_stale_temporaries(folder)
    finished = (out / METRICS_FILE).exists()
    if has_backup(out):  # an unfinished run in place (or one between its last epoch and its metrics)
        if same_run(out):
            return RunPlan(out, out, resuming=True)
        if not overwrite:
            raise OutputFolderError(
                f"{out} holds an interrupted training run with other options; resume it with "
                f"{_saved_command(out) or 'the options in ' + str(out / CONFIG_FILE)}, or pass --overwrite to "
                f"start over, or --out another folder"
            )
    elif finished and not overwrite:
        pending = has_backup(staging) and same_run(staging)
        raise OutputFolderError(
            f"{out} already holds a trained model ({METRICS_FILE} is there); "
            + ("an interrupted --overwrite run of these options waits beside it: add --overwrite to finish it"
               if pending else "pass --overwrite to replace it (the new model replaces it only when done), "
               "or --out another folder")
        )  # fmt: skip
    if not (out / MODEL_FILE).exists():
        shutil.rmtree(staging, ignore_errors=True)
        return RunPlan(out, out, resuming=False)
    # A model is there: the new run trains beside it, so that it stays whole until the new one is done.
    if has_backup(staging) and same_run(staging):
        return RunPlan(out, staging, resuming=True)
    return RunPlan(out, staging, resuming=False)


def begin_writing(plan: RunPlan) -> None:
    """The run starts to change its folder: a fresh run clears what an earlier one left there.

    In place, metrics.json goes first: it marks a finished model, and a run killed from here on leaves a
    folder that the next run resumes or refuses, never a half-trained model that looks finished.
    """
    if plan.resuming:
        return
    if plan.replacing:
        shutil.rmtree(plan.work, ignore_errors=True)
        plan.work.mkdir(parents=True)
        return
    shutil.rmtree(plan.work / BACKUP_DIR, ignore_errors=True)
    (plan.work / METRICS_FILE).unlink(missing_ok=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swaps the names `a` and `b` in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, f"cannot swap {a} and {b}: {os.strerror(code)}")


def drop_backup(folder: str | os.PathLike) -> None:
    """Deletes the training state of a run whose results are saved (a worker of a cluster calls it alone)."""
    shutil.rmtree(Path(folder) / BACKUP_DIR, ignore_errors=True)


def finish_run(plan: RunPlan) -> Path:
    """Ends a run whose metrics.json is written: drops its backup, swaps it in if it replaced a model,
    and releases the folder's lock.

    Returns the model folder (`plan.out`).
    """
    drop_backup(plan.work)
    if plan.replacing:
        if not _exchange(plan.work, plan.out):
            # Two renames: a kill between them leaves no `out`, which `_recover_swap` repairs at the next start.
            os.rename(plan.out, _retired_folder(plan.out))
            os.rename(plan.work, plan.out)
            shutil.rmtree(_retired_folder(plan.out), ignore_errors=True)
        else:
            shutil.rmtree(plan.work, ignore_errors=True)  # now the old model
    unlock_folder(plan.out)
    return plan.out


# ---- config.json and the checks on load ----


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex (read in blocks: a model file may be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def vocabulary_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a vocabulary file's bytes (line order included), as hex."""
    return file_sha256(path)


def user_command(argv: Iterable[str] | None = None) -> str:
    """The command line that started this process, as a user would type it again.

    Example:

    >>> from nlp_lstm.run_folder import user_command
    >>> user_command(["/venv/bin/nlp-lstm", "train", "nextword", "--out", "my model"])
    "nlp-lstm train nextword --out 'my model'"
    """
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "nlp-lstm"
    head = [program] if program == "nlp-lstm" else ["python", argv[0]]
    return shlex.join([*head, *argv[1:]])


def run_config(values: dict[str, Any], folder: str | os.PathLike, command: str | None) -> dict[str, Any]:
    """config.json's content: the app's `values`, the hash of the folder's vocabulary and the command."""
    vocabulary = Path(folder) / VOCABULARY_FILE
    digest = vocabulary_sha256(vocabulary) if vocabulary.exists() else None
    return {**values, VOCABULARY_HASH_KEY: digest, "command": command}


def retrain_hint(folder: str | os.PathLike, config: dict[str, Any] | None, app: str) -> str:
    """The command that trains the folder's model again from the start: the saved one, with --overwrite."""
    command = (config or {}).get("command") if isinstance(config, dict) else None
    if not isinstance(command, str) or not command:
        command = shlex.join(["nlp-lstm", "train", app, "--out", str(folder)])
    return command if "--overwrite" in shlex.split(command) else f"{command} --overwrite"


def read_model_config(model_dir: str | os.PathLike, app: str | None = None) -> dict[str, Any]:
    """Reads and checks a model folder's config.json (which must name its "app").

    Args:
        model_dir: The folder a training run wrote.
        app: The app it must belong to ("sentiment", "nextword"); None accepts any.

    Raises:
        ModelFolderError: No such folder, no or unreadable config.json, or another app's model.

    Example:

    >>> import pathlib, tempfile
    >>> from nlp_lstm.run_folder import ModelFolderError, read_model_config
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text('{"app": "nextword", "nlp_lstm_version": "0.2.0"}')
    >>> read_model_config(folder)["app"]
    'nextword'
    >>> try:
    ...     read_model_config(folder, app="sentiment")
    ... except ModelFolderError as error:
    ...     print(str(error).split(":")[0].endswith("not a sentiment model"))
    True
    """
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise ModelFolderError(
            f"{folder} is not a folder; give the folder a training run wrote "
            f"(nlp-lstm train {app or 'sentiment'} --out FOLDER)"
        )
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFolderError(
            f"{folder} is not a model folder: it has no {CONFIG_FILE} (a training run writes one)"
        ) from None
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"cannot read {path} ({error}); train the model again") from error
    if not isinstance(config, dict) or "app" not in config:
        raise ModelFolderError(f'{path} does not say which app it belongs to (no "app"); train the model again')
    if app is not None and config["app"] != app:
        raise ModelFolderError(f"{folder} is not a {app} model: its {CONFIG_FILE} says app={config['app']!r}")
    version = str(config.get("nlp_lstm_version", "0.1"))
    if version.split(".")[:2] != __version__.split(".")[:2]:
        raise ModelFolderError(
            f"{folder} was written by nlp_lstm {version}, whose model folders this version ({__version__}) does "
            f"not read (its options and files changed); train it again: {retrain_hint(folder, config, config['app'])}"
        )
    return config


def require_files(folder: str | os.PathLike, names: Iterable[str], config: dict[str, Any] | None = None) -> None:
    """Raises ModelFolderError naming the files of `names` missing from `folder`, and what to run."""
    missing = [name for name in names if not (Path(folder) / name).is_file()]
    if not missing:
        return
    app = (config or {}).get("app", "sentiment")
    saved = (config or {}).get("command")
    if has_backup(folder) and isinstance(saved, str) and saved:
        what = f"its training did not finish: rerun {saved} to resume it"
    else:
        what = (
            f"its training did not finish or the files were moved: train it again ({retrain_hint(folder, config, app)})"
        )
    raise ModelFolderError(f"{folder} lacks {', '.join(missing)}: {what}")


def check_vocabulary(folder: str | os.PathLike, config: dict[str, Any]) -> None:
    """Checks that vocabulary.txt is the one config.json and checkpoint.json were written with.

    A folder written before the hash existed passes with a one-line warning on stderr.

    Raises:
        ModelFolderError: The vocabulary differs (another run's, or edited), or model.keras was saved
            with another vocabulary than config.json's.
    """
    folder = Path(folder)
    expected = config.get(VOCABULARY_HASH_KEY)
    if expected is None:
        print(
            f"warning: {folder / CONFIG_FILE} has no {VOCABULARY_HASH_KEY} (written by an earlier version), so the "
            f"vocabulary cannot be checked against the model",
            file=sys.stderr,
        )
        return
    retrain = retrain_hint(folder, config, str(config.get("app", "sentiment")))
    if vocabulary_sha256(folder / VOCABULARY_FILE) != expected:
        raise ModelFolderError(
            f"{folder / VOCABULARY_FILE} is not the vocabulary this model was trained with (its hash differs "
            f"from {CONFIG_FILE}'s); restore it, or train again ({retrain})"
        )
    try:
        saved_with = json.loads((folder / CHECKPOINT_FILE).read_text(encoding="utf-8")).get(VOCABULARY_HASH_KEY)
    except (OSError, ValueError, AttributeError):
        return  # no record of the checkpoint (a model saved by other code): nothing more to compare
    if saved_with is not None and saved_with != expected:
        raise ModelFolderError(
            f"{folder / MODEL_FILE} was saved by another training run than {CONFIG_FILE} and "
            f"{VOCABULARY_FILE} describe; train again ({retrain})"
        )
