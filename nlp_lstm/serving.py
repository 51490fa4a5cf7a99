"""SavedModel helpers shared by both exports: TF Serving's layout, EXPORT_DIR/<version>/.

    write_next_version(export_dir, write) -> Path
        Calls write(temporary folder) and renames the result to EXPORT_DIR/<max existing + 1>/, so
        TF Serving (which watches EXPORT_DIR) never sees a half-written version.
    saved_model_op_names(path) -> set[str]
        Every op type in a SavedModel's graphs, functions included (to check for CudnnRNN ops).
    Endpoint(function, input_signature)
        One signature of a served model: what an export writes and what `nlp-lstm serve` runs in memory.
    write_string_archive(folder, model, vectorizer, endpoints)
        A SavedModel of the endpoints (`serving_default` among them), the vectorizer's table with it.

A version folder gets the permissions a plain `mkdir` and file write would give it (0755 and 0644 with
the usual umask 022), so a server running as another user can read it: the temporary folder it is
written in is private (`tempfile.mkdtemp` makes it 0700) until it is renamed.

Nothing here knows either app.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf


def existing_versions(export_dir: str | os.PathLike) -> list[int]:
    """The version numbers (all-digit folder names) under `export_dir`, ascending."""
    folder = Path(export_dir)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"[0-9]+", p.name))


def write_next_version(export_dir: str | os.PathLike, write: Callable[[Path], None], attempts: int = 5) -> Path:
    """Writes a new version folder EXPORT_DIR/<max existing + 1>/ atomically.

    `write(folder)` fills a temporary folder inside `export_dir` (a name TF Serving ignores); the
    folder is then made readable as the umask allows (`_open_up`) and renamed to the version number.
    If another export took that number meanwhile, the next one is tried.

    Example:

    >>> import pathlib, tempfile
    >>> from nlp_lstm.serving import write_next_version
    >>> export_dir = pathlib.Path(tempfile.mkdtemp())
    >>> (export_dir / "3").mkdir()
    >>> write_next_version(export_dir, lambda folder: (folder / "f.txt").write_text("x")).name
    '4'
    >>> sorted(p.name for p in export_dir.iterdir())
    ['3', '4']
    """
    folder = Path(export_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".export-"))
    try:
        write(tmp)
        _open_up(tmp)
        for _ in range(attempts):
            target = folder / str((existing_versions(folder) or [0])[-1] + 1)
            try:
                os.rename(tmp, target)  # fails if a concurrent export created `target`
                return target
            except OSError:
                if not target.exists():
                    raise
        raise OSError(f"could not claim a version folder in {folder} after {attempts} tries")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _open_up(folder: Path) -> None:
    """Gives `folder` and everything in it the modes mkdir and open would: 0o777 / 0o666 less the umask.

    `tempfile.mkdtemp` makes its folder 0700 whatever the umask, which would keep a version folder from a
    server running as another user. Executable bits of files are kept (none are expected).
    """
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o777 & ~mask)
        else:
            path.chmod((0o666 | (path.stat().st_mode & 0o111)) & ~mask)


def saved_model_op_names(path: str | os.PathLike) -> set[str]:
    """Op types of every graph and function in the SavedModel at `path`.

    Example (``export_path``: a SavedModel the test exported):

    >>> from nlp_lstm.serving import saved_model_op_names
    >>> ops = saved_model_op_names(export_path)
    >>> "StringLower" in ops or "RegexReplace" in ops, any("Cudnn" in op for op in ops)
    (True, False)
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    names: set[str] = set()
    for meta_graph in saved_model.meta_graphs:
        names.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            names.update(node.op for node in function.node_def)
    return names


@dataclass(frozen=True)
class Endpoint:
    """One signature: `function(**inputs) -> {name: tensor}` and the `tf.TensorSpec`s of its inputs (named)."""

    function: Callable[..., dict[str, tf.Tensor]]
    input_signature: list[tf.TensorSpec]

    def traced(self) -> Callable[..., dict[str, tf.Tensor]]:
        """The function traced once for its signature (any batch size), as a SavedModel holds it."""
        return tf.function(self.function, input_signature=self.input_signature, reduce_retracing=True)


def write_string_archive(
    folder: Path, model: keras.Model, vectorizer: keras.layers.TextVectorization, endpoints: Mapping[str, Endpoint]
) -> None:
    """Writes a SavedModel of `endpoints` to `folder` (its `serving_default` takes raw strings, `text` [None]).

    Tracks the model and the vectorizer (its lookup table is a resource the SavedModel must hold), and
    refuses a graph with CuDNN ops.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    vectorizer(tf.constant([""]))  # builds the layer, which ExportArchive requires
    archive.track(vectorizer)
    for name, endpoint in endpoints.items():
        archive.add_endpoint(name, endpoint.function, input_signature=endpoint.input_signature)
    archive.write_out(str(folder), verbose=False)
    cudnn = sorted(op for op in saved_model_op_names(folder) if "Cudnn" in op)
    if cudnn:  # a GPU-only op would make the model unservable on a CPU
        raise RuntimeError(f"the exported graph holds CuDNN ops {cudnn}; it would not serve on a CPU")
