"""The models a server holds: a model folder or an export, loaded once, with its signatures.

    --sentiment DIR / --nextword DIR, where DIR is
      a model folder (what `nlp-lstm train` wrote: config.json, model.keras, vocabulary.txt), served
        as version 1 with the signatures the export would write, traced in memory; or
      an export (what `nlp-lstm export --out` wrote: DIR/<version>/saved_model.pb), served at its
        newest version as TF Serving does by default, with the SavedModel's own signatures.

A folder that is neither, another app's, or damaged is refused before the server starts
(ModelFolderError), as TF Serving refuses a model it cannot load.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from nlp_lstm.run_folder import CONFIG_FILE, ModelFolderError, read_model_config
from nlp_lstm.serving import existing_versions

APPS = ("sentiment", "nextword")


@dataclass(frozen=True)
class TensorInfo:
    """A named input or output: its dtype and its shape (None for an unknown dimension)."""

    name: str
    dtype: tf.DType
    shape: tuple[int | None, ...]

    def to_json(self, prefix: str) -> dict[str, Any]:
        """As TF Serving's metadata writes a TensorInfo."""
        dims = [{"size": str(-1 if size is None else size), "name": ""} for size in self.shape]
        dtype = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE"}.get(self.dtype.name, f"DT_{self.dtype.name.upper()}")
        return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": f"{prefix}_{self.name}:0"}


@dataclass(frozen=True)
class Signature:
    """One signature: call it with {input name: array (batch, ...)}; it returns {output name: array}."""

    name: str
    function: Callable[..., Mapping[str, tf.Tensor]]
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {key: tf.constant(value, self.inputs[key].dtype) for key, value in inputs.items()}
        return {key: value.numpy() for key, value in self.function(**tensors).items()}

    def metadata(self) -> dict[str, Any]:
        prefix = self.name
        return {
            "inputs": {name: info.to_json(prefix) for name, info in self.inputs.items()},
            "outputs": {name: info.to_json("StatefulPartitionedCall") for name, info in self.outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }


@dataclass
class ServedModel:
    """A model as the server holds it: its name, its one version, where it came from, its signatures."""

    name: str
    version: int
    source: str  # "model folder" or "export"
    path: Path
    signatures: dict[str, Signature]
    folder: Any = field(default=None, repr=False)  # the loaded model folder (explain needs it), or None


def _info(name: str, spec: Any) -> TensorInfo:
    return TensorInfo(name, tf.as_dtype(spec.dtype), tuple(spec.shape.as_list()))


def _from_function(name: str, function: Any) -> Signature:
    """A Signature from a concrete function (a SavedModel's signature or a traced Endpoint)."""
    positional, keyword = function.structured_input_signature  # a SavedModel's: keywords; a trace's: positions
    specs = dict(sorted(keyword.items())) if keyword else {spec.name: spec for spec in positional}
    inputs = {key: _info(key, spec) for key, spec in specs.items()}
    outputs = {key: _info(key, spec) for key, spec in sorted(function.structured_outputs.items())}
    return Signature(name, function, inputs, outputs)


def _folder_signatures(app: str, folder: Path) -> tuple[dict[str, Signature], Any]:
    if app == "sentiment":
        from nlp_lstm.sentiment.export import sentiment_endpoints
        from nlp_lstm.sentiment.predict import load_sentiment_model

        loaded = load_sentiment_model(folder)
        endpoints = sentiment_endpoints(loaded)
    else:
        from nlp_lstm.nextword.export import nextword_endpoints
        from nlp_lstm.nextword.model import load_nextword_folder

        loaded = load_nextword_folder(folder)
        endpoints = nextword_endpoints(loaded)
    signatures = {}
    for name, endpoint in endpoints.items():
        concrete = endpoint.traced().get_concrete_function()
        signatures[name] = _from_function(name, concrete)
    return signatures, loaded


def _export_signatures(path: Path) -> dict[str, Signature]:
    try:
        saved = tf.saved_model.load(str(path))
    except Exception as error:  # a damaged SavedModel raises many kinds; all mean the same here
        raise ModelFolderError(f"cannot load the SavedModel {path} ({type(error).__name__}: {error})") from error
    return {name: _from_function(name, function) for name, function in saved.signatures.items()}


def load_served(app: str, path: str | os.PathLike) -> ServedModel:
    """Loads `path` for `app` ("sentiment" or "nextword"): a model folder, or an export's newest version.

    Raises:
        ModelFolderError: `path` is missing, is another app's, or cannot be loaded.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder; pass --{app} with a model folder or an export folder")
    if (folder / CONFIG_FILE).exists():
        read_model_config(folder, app)  # refuses another app's folder in one line
        signatures, loaded = _folder_signatures(app, folder)
        return ServedModel(app, 1, "model folder", folder, signatures, loaded)
    versions = [v for v in existing_versions(folder) if (folder / str(v) / "saved_model.pb").is_file()]
    if not versions:
        raise ModelFolderError(
            f"{folder} is neither a model folder (no {CONFIG_FILE}) nor an export (no <version>/saved_model.pb); "
            f"pass what `nlp-lstm train {app}` or `nlp-lstm export` wrote"
        )
    version = max(versions)
    signatures = _export_signatures(folder / str(version))
    if "serving_default" not in signatures:
        raise ModelFolderError(f"{folder / str(version)} has no serving_default signature")
    return ServedModel(app, version, "export", folder / str(version), signatures)
