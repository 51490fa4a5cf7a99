"""Atomic file writes: a temporary file in the same folder, then a rename over the target.

A reader, or a kill -9 in the middle of a save, sees the old file or the new one, never half of one.
Lowest in the package: the vocabulary, the model folder, training and its records, evaluation use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlp_lstm import faults

if TYPE_CHECKING:
    import keras


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def atomic_replace(path: str | os.PathLike, write: Any, suffix: str = ".tmp") -> Path:
    """Calls write(temp_path) for a temporary file next to `path`, then renames it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        _fsync_file(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a model is for others (a server) to read too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` (UTF-8) to `path` atomically: a temporary file in the same folder, then `os.replace`.

    Example:

    >>> import pathlib, tempfile
    >>> from nlp_lstm.files import atomic_write_text
    >>> path = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "note.txt", "café\\n")
    >>> path.read_text(encoding="utf-8"), [p.name for p in path.parent.iterdir()]
    ('café\\n', ['note.txt'])
    """
    return atomic_replace(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes `obj` as indented JSON to `path` atomically (see `atomic_write_text`)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=True) + "\n")


def atomic_save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves `model` to the `.keras` file `path` atomically: a kill mid-save leaves the old file whole.

    Example:

    >>> import keras, pathlib, tempfile
    >>> from nlp_lstm.files import atomic_save_model
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> path = atomic_save_model(model, pathlib.Path(tempfile.mkdtemp()) / "model.keras")
    >>> keras.models.load_model(path).count_params()
    4
    """
    if not str(path).endswith(".keras"):
        raise ValueError(f"a Keras model file must end in .keras, got {path}")
    # Keras insists on the .keras suffix, so the temporary name keeps it.

    def save(tmp: Path) -> None:
        model.save(tmp, overwrite=True)
        faults.reached("model-save")  # tests: a kill -9 here leaves the temporary file, never a half model

    return atomic_replace(path, save, suffix=".tmp.keras")
