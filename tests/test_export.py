"""Tests of nlp_lstm.sentiment.export: the SavedModel serves with TensorFlow alone and matches the Keras model."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sentiment_helpers import tiny_sentiment_model
from test_sentiment import AWKWARD_TEXTS

from nlp_lstm.run_folder import ModelFolderError
from nlp_lstm.sentiment import export
from nlp_lstm.sentiment.export import export_sentiment
from nlp_lstm.sentiment.predict import predict_sentiment
from nlp_lstm.serving import saved_model_op_names, write_next_version

# Loads the export where nlp_lstm cannot be imported (the editable install is found even with
# `python -I`, so a finder blocks it) and prints its outputs as JSON. (Keras stays importable:
# TensorFlow's own `import tensorflow` imports it.)
SERVE_WITH_TENSORFLOW_ONLY = textwrap.dedent(
    """
    import json, sys

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "nlp_lstm":
                raise ImportError(f"{name} is blocked in this process")
            return None

    sys.meta_path.insert(0, Blocked())
    try:
        import nlp_lstm
    except ImportError:
        pass
    else:
        sys.exit("nlp_lstm could be imported")

    import tensorflow as tf

    texts = [bytes.fromhex(text) for text in json.loads(sys.stdin.read())]
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    outputs = serve(text=tf.constant(texts, tf.string))
    assert outputs["probability"].dtype == tf.float32 and outputs["label"].dtype == tf.int64
    print(json.dumps({name: value.numpy().tolist() for name, value in outputs.items()}))
    """
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_sentiment_model(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    return export_sentiment(trained[1], tmp_path_factory.mktemp("exports"))


def as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", errors="surrogateescape")


def test_docstring_examples_run(trained, exported):
    from nlp_lstm import serving

    globs = {"model_dir": str(trained[1]), "export_path": str(exported)}
    results = [doctest.testmod(module, extraglobs=globs) for module in (export, serving)]
    assert sum(r.attempted for r in results) >= 10 and all(r.failed == 0 for r in results)


def test_export_serves_with_tensorflow_alone_and_matches_the_keras_model(trained, exported):
    texts = ["Loved every minute!", "Dull, dull, dull.", *AWKWARD_TEXTS]
    expected = predict_sentiment(trained[1], texts)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    served = subprocess.run(
        [sys.executable, "-I", "-c", SERVE_WITH_TENSORFLOW_ONLY, str(exported)],
        input=json.dumps([as_bytes(text).hex() for text in texts]), capture_output=True, text=True,
        timeout=120, cwd="/", env=env,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    outputs = json.loads(served.stdout.strip().splitlines()[-1])
    # predict leaves a text with no known word unlabelled (NaN); the export scores every text.
    judged = [i for i, p in enumerate(expected) if p.judged]
    assert len(judged) >= 5 and len(outputs["probability"]) == len(texts)
    served_judged = [outputs["probability"][i] for i in judged]
    np.testing.assert_allclose(served_judged, [expected[i].probability for i in judged], atol=1e-5, rtol=0)
    assert [outputs["label"][i] for i in judged] == [int(expected[i].label == "pos") for i in judged]


def test_export_holds_no_cudnn_ops(exported):
    ops = saved_model_op_names(exported)
    assert {"StringLower", "MatMul", "Sigmoid"} <= ops  # the vectorizer and the LSTM are really in it
    assert not [op for op in ops if "Cudnn" in op]


def test_versions_count_up_and_no_temporary_folder_is_left(trained, tmp_path):
    export_dir = tmp_path / "exports"
    (export_dir / "7").mkdir(parents=True)
    (export_dir / "notes").mkdir()
    assert export_sentiment(trained[1], export_dir).name == "8"
    assert sorted(p.name for p in export_dir.iterdir()) == ["7", "8", "notes"]
    assert (export_dir / "8" / "saved_model.pb").exists()


def test_a_failed_export_leaves_no_version(tmp_path):
    def fail(folder: Path) -> None:
        (folder / "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_next_version(tmp_path, fail)
    assert list(tmp_path.iterdir()) == []


def test_exporting_a_folder_that_is_not_a_sentiment_model_fails_clearly(tmp_path):
    (tmp_path / "config.json").write_text('{"app": "nextword"}')
    with pytest.raises(ModelFolderError, match="not a sentiment model"):
        export_sentiment(tmp_path, tmp_path / "exports")
    assert not (tmp_path / "exports").exists()


def _modes(folder: Path) -> dict[str, int]:
    """Relative path -> permission bits of `folder` ("." itself) and everything in it."""
    return {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_a_version_folder_gets_the_modes_of_a_plain_mkdir(tmp_path, umask, folder_mode, file_mode):
    def write(folder: Path) -> None:
        (folder / "variables").mkdir()
        (folder / "variables" / "variables.index").write_bytes(b"x")
        (folder / "saved_model.pb").write_bytes(b"x")
        os.chmod(folder / "saved_model.pb", 0o600)  # as a private writer would leave it

    old = os.umask(umask)
    try:
        version = write_next_version(tmp_path / "exports", write)
    finally:
        os.umask(old)
    modes = _modes(version)
    assert modes == {".": folder_mode, "variables": folder_mode, "variables/variables.index": file_mode,
                     "saved_model.pb": file_mode}  # fmt: skip


def test_an_exported_sentiment_model_is_readable_by_other_users(exported):
    mask = os.umask(0o022)
    os.umask(mask)
    modes = _modes(exported)  # 0755 and 0644 with the usual umask 022, not mkdtemp's 0700
    assert {mode for path, mode in modes.items() if (exported / path).is_dir()} == {0o777 & ~mask}
    assert {mode for path, mode in modes.items() if (exported / path).is_file()} == {0o666 & ~mask}
