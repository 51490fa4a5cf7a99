"""What a training run records beside its model: history.csv, curves.png, metrics.json (with the machine).

history.csv    one row per epoch (`epoch_time_s` among the columns); trimmed on resume
curves.png     loss and metric curves, redrawn from history.csv after every epoch
metrics.json   the app's figures, the wall time and `machine_info()`
"""

from __future__ import annotations

import csv
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from nlp_lstm import machine
from nlp_lstm.files import atomic_replace, atomic_write_json
from nlp_lstm.run_folder import (
    HISTORY_FILE,
)


def read_history(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def write_history_row(path: Path, epoch: int, logs: Mapping[str, Any]) -> None:
    """Writes the row of `epoch` into history.csv, dropping the rows of that epoch and later ones first
    (a resumed run records each epoch once, however often it was begun)."""
    rows = [row for row in read_history(path) if int(float(row["epoch"])) < epoch]
    rows.append({"epoch": str(epoch), **{key: repr(float(value)) for key, value in logs.items()}})
    write_history(path, rows)


def write_history(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """history.csv with `rows`, atomically; the columns are every key, in order of first appearance."""
    names = list(dict.fromkeys(key for row in rows for key in row))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=names, restval="")
            writer.writeheader()
            writer.writerows(rows)

    atomic_replace(path, write)


def keep_history_before(path: Path, epoch: int) -> None:
    """Drops history rows of epochs >= `epoch` (rows of epochs a resumed run trains again)."""
    rows = read_history(path)
    kept = [row for row in rows if int(float(row["epoch"])) < epoch]
    if len(kept) != len(rows):
        write_history(path, kept)


def plot_history(history_csv: str | os.PathLike, png: str | os.PathLike) -> Path | None:
    """Draws each logged quantity (train and val) against the epoch into `png`; None if no rows yet.

    Example:

    >>> import pathlib, tempfile
    >>> from nlp_lstm.records import plot_history
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "h.csv").write_text("epoch,loss,val_loss\\n0,0.7,0.69\\n1,0.5,0.6\\n")
    >>> plot_history(folder / "h.csv", folder / "curves.png").stat().st_size > 0
    True
    """
    rows = read_history(Path(history_csv))
    if not rows:
        return None
    # The object-oriented API: no pyplot, so no global backend switch and no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [int(float(row["epoch"])) + 1 for row in rows]
    names = [k for k in rows[0] if k != "epoch" and not k.startswith("val_") and k != "epoch_time_s"]
    names = [k for k in names if k not in ("learning_rate",)] or names
    # No layout engine: "constrained" doubles the drawing time, and this runs after every epoch.
    figure = Figure(figsize=(4.5 * max(len(names), 1), 3.5))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    FigureCanvasAgg(figure)
    for index, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), index + 1)
        for key, style in ((name, "o-"), (f"val_{name}", "s--")):
            if key in rows[0]:
                values = [float(row[key]) if row[key] not in ("", "NA") else math.nan for row in rows]
                axes.plot(epochs, values, style, label=key)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(name)
        axes.grid(alpha=0.3)
        axes.legend()
    return atomic_replace(png, lambda tmp: figure.savefig(tmp, format="png", dpi=80), suffix=".tmp.png")


def training_time_s(out_dir: str | os.PathLike) -> float:
    """Seconds spent in epochs in all, across resumes (the sum of history.csv's `epoch_time_s`)."""
    return sum(float(row.get("epoch_time_s") or 0.0) for row in read_history(Path(out_dir) / HISTORY_FILE))


def machine_info() -> dict[str, Any]:
    """The machine and software a figure was measured on (`nlp_lstm.machine`).

    Example:

    >>> from nlp_lstm.records import machine_info
    >>> sorted(machine_info())  # doctest: +NORMALIZE_WHITESPACE
    ['cpu_count', 'cpu_model', 'cpus_usable', 'gpus', 'keras', 'machine', 'onednn', 'platform', 'processor',
     'python', 'tensorflow', 'vector_extensions']
    """
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": machine.cpu_model(),
        "vector_extensions": machine.vector_extensions(),
        "onednn": machine.onednn_on(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": machine.cpus_usable(),
        "gpus": machine.gpu_names(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def write_metrics_json(path: str | os.PathLike, metrics: Mapping[str, Any], wall_time_s: float) -> dict[str, Any]:
    """Writes `metrics` with the wall time and `machine_info()` to `path` (atomically); returns what it wrote.

    Example:

    >>> import json, pathlib, tempfile
    >>> from nlp_lstm.records import write_metrics_json
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
    >>> written = write_metrics_json(path, {"test_accuracy": 0.9}, wall_time_s=12.5)
    >>> json.loads(path.read_text())["wall_time_s"], written["machine"]["cpu_count"] > 0
    (12.5, True)
    """
    written = {**metrics, "wall_time_s": round(float(wall_time_s), 3), "machine": machine_info()}
    atomic_write_json(path, written)
    return written
