"""TF Serving's REST request and response formats, in plain Python and NumPy (no HTTP here).

    row format       {"signature_name": "...", "instances": [instance, ...]}
                     an instance is a value when the signature has one input, else {input: value}
                     answered with {"predictions": [prediction, ...]}: a value per instance when the
                     signature has one output, else {output: value}
    columnar format  {"signature_name": "...", "inputs": value | {input: value}}
                     answered with {"outputs": value | {output: value}}

A string input may also be given as {"b64": "<base64>"}, as TF Serving allows, for bytes that are
not UTF-8. Every way a request can be wrong raises RequestError with a one-line message and the HTTP
status to answer with (400, or 413 for too many instances).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nlp_lstm.serve.models import Signature

DEFAULT_SIGNATURE = "serving_default"


class RequestError(ValueError):
    """A request the server cannot answer: `status` is the HTTP status to send with the message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PredictRequest:
    """A parsed :predict body: the signature, its inputs (batch first) and the format to answer in."""

    signature: Signature
    inputs: dict[str, np.ndarray]
    row_format: bool

    @property
    def batch_size(self) -> int:
        return len(next(iter(self.inputs.values())))


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object.

    Example:

    >>> from nlp_lstm.serve.rest import parse_json_body, RequestError
    >>> parse_json_body(b'{"instances": ["Great!"]}')
    {'instances': ['Great!']}
    >>> try:
    ...     parse_json_body(b'{"instances": [')
    ... except RequestError as error:
    ...     print(error.status, error)
    400 the body is not valid JSON: Expecting value at line 1, column 16
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"the body is not UTF-8 (byte {error.start}); send JSON in UTF-8") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"{error.msg} at line {error.lineno}, column {error.colno}"
        raise RequestError(f"the body is not valid JSON: {where}") from None
    except RecursionError:
        raise RequestError("the body is not valid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise RequestError(f"the body must be a JSON object, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{where}: b64 is not valid base64") from None
    raise RequestError(f'{where} must be a string (or {{"b64": ...}}), got {_kind(value)}')


def _kind(value: Any) -> str:
    return (
        "null"
        if value is None
        else {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), type(value).__name__)
    )


def _column(signature: Signature, name: str, values: list[Any], where: str) -> np.ndarray:
    """One input's values (one per instance) as an array of the input's dtype and shape."""
    info = signature.inputs[name]
    if info.dtype.name == "string":
        return np.array([_string(v, f"{where} {i} ({name})") for i, v in enumerate(values)], dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, str | dict) or value is None:
            raise RequestError(f"{where} {i} ({name}) must be a number or a list of numbers, got {_kind(value)}")
    try:
        array = np.array(values, dtype=info.dtype.as_numpy_dtype)
    except (TypeError, ValueError, OverflowError) as error:
        raise RequestError(f"{name} must be {info.dtype.name} values of shape {_shape(info.shape)}: {error}") from None
    wanted = info.shape
    if array.ndim != len(wanted) or any(w is not None and w != s for w, s in zip(wanted, array.shape)):
        raise RequestError(f"{name} must have shape {_shape(wanted)}, got {_shape(array.shape)}")
    return array


def _shape(shape: tuple) -> str:
    return "[" + ", ".join("batch" if i == 0 else ("?" if s is None else str(s)) for i, s in enumerate(shape)) + "]"


def parse_predict(body: Mapping[str, Any], signatures: Mapping[str, Signature], max_instances: int) -> PredictRequest:
    """Reads a :predict body against the model's signatures; raises RequestError on anything wrong.

    Example (``signatures``: a served model's, whose serving_default takes `text`):

    >>> from nlp_lstm.serve.rest import parse_predict
    >>> request = parse_predict({"instances": ["Great!", {"text": "Dull."}]}, signatures, max_instances=10)
    >>> request.inputs["text"].tolist(), request.row_format
    ([b'Great!', b'Dull.'], True)
    """
    name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise RequestError(f"signature_name must be a string, got {_kind(name)}")
    if name not in signatures:
        raise RequestError(f"no signature {name!r}; this model has {', '.join(sorted(signatures))}")
    signature = signatures[name]
    unknown = set(body) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(sorted(unknown))}; a :predict body has instances or inputs")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError('a :predict body needs "instances" (row format) or "inputs" (columnar format), not both')
    input_names = list(signature.inputs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise RequestError(f"instances must be a list, got {_kind(instances)}")
        columns = _row_columns(instances, input_names)
        row_format = True
    else:
        columns = _columnar_columns(body["inputs"], input_names)
        row_format = False
    sizes = {len(values) for values in columns.values()}
    if len(sizes) != 1:
        raise RequestError(f"the inputs have different numbers of instances: {sorted(sizes)}")
    size = sizes.pop()
    if size == 0:
        raise RequestError("no instances: send at least one")
    if size > max_instances:
        raise RequestError(f"{size:,} instances in one request; the server takes at most {max_instances:,}", 413)
    where = "instance" if row_format else "input"
    inputs = {key: _column(signature, key, values, where) for key, values in columns.items()}
    return PredictRequest(signature, inputs, row_format)


def parse_explain(body: Mapping[str, Any], max_instances: int) -> list[bytes]:
    """The texts of an :explain body, {"instances": [text, ...]}.

    Example:

    >>> from nlp_lstm.serve.rest import parse_explain
    >>> parse_explain({"instances": ["Not bad at all."]}, max_instances=4)
    [b'Not bad at all.']
    """
    unknown = set(body) - {"instances"}
    if unknown or "instances" not in body:
        raise RequestError('an :explain body is {"instances": [text, ...]}')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise RequestError(f"instances must be a list, got {_kind(instances)}")
    if not instances:
        raise RequestError("no instances: send at least one")
    if len(instances) > max_instances:
        raise RequestError(
            f"{len(instances)} texts to explain in one request; the server takes at most {max_instances}", 413
        )
    return [_string(value, f"instance {i}") for i, value in enumerate(instances)]


def _row_columns(instances: list[Any], input_names: list[str]) -> dict[str, list[Any]]:
    single = len(input_names) == 1
    columns: dict[str, list[Any]] = {key: [] for key in input_names}
    for i, instance in enumerate(instances):
        if isinstance(instance, dict) and not (single and set(instance) == {"b64"}):
            missing, extra = set(input_names) - set(instance), set(instance) - set(input_names)
            if missing or extra:
                raise RequestError(
                    f"instance {i} has inputs {sorted(instance)}; the signature takes {sorted(input_names)}"
                )
            for key in input_names:
                columns[key].append(instance[key])
        elif single:
            columns[input_names[0]].append(instance)
        else:
            raise RequestError(f"instance {i} must be an object with {sorted(input_names)}, got {_kind(instance)}")
    return columns


def _columnar_columns(inputs: Any, input_names: list[str]) -> dict[str, list[Any]]:
    if isinstance(inputs, dict) and not (len(input_names) == 1 and set(inputs) == {"b64"}):
        missing, extra = set(input_names) - set(inputs), set(inputs) - set(input_names)
        if missing or extra:
            raise RequestError(f"inputs has {sorted(inputs)}; the signature takes {sorted(input_names)}")
        columns = {key: inputs[key] for key in input_names}
    elif len(input_names) == 1:
        columns = {input_names[0]: inputs}
    else:
        raise RequestError(f"inputs must be an object with {sorted(input_names)}, got {_kind(inputs)}")
    for key, values in columns.items():
        if not isinstance(values, list):
            raise RequestError(f"inputs {key} must be a list (one value per instance), got {_kind(values)}")
    return columns


def _jsonable(array: np.ndarray) -> list[Any]:
    if array.dtype == object:  # strings
        return np.vectorize(lambda b: b.decode("utf-8", errors="replace"), otypes=[object])(array).tolist()
    return array.tolist()


def predict_response(request: PredictRequest, outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The JSON answer to `request`, in its format.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.serve.rest import PredictRequest, predict_response
    >>> outputs = {"label": np.array([1, 0]), "probability": np.array([0.75, 0.25], np.float32)}
    >>> predict_response(PredictRequest(None, {"text": np.array([b"a", b"b"])}, True), outputs)
    {'predictions': [{'label': 1, 'probability': 0.75}, {'label': 0, 'probability': 0.25}]}
    >>> predict_response(PredictRequest(None, {"text": np.array([b"a", b"b"])}, False), outputs)
    {'outputs': {'label': [1, 0], 'probability': [0.75, 0.25]}}
    """
    columns = {key: _jsonable(value) for key, value in sorted(outputs.items())}
    if not request.row_format:
        return {"outputs": next(iter(columns.values())) if len(columns) == 1 else columns}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    size = len(next(iter(columns.values())))
    return {"predictions": [{key: values[i] for key, values in columns.items()} for i in range(size)]}
