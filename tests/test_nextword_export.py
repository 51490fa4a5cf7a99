"""Tests of nlp_lstm.nextword.export: the SavedModel loads with TensorFlow alone and equals the model."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nextword_helpers import write_model_folder

from nlp_lstm.nextword import export as nextword_export
from nlp_lstm.nextword.export import export_nextword
from nlp_lstm.nextword.prompt import TypedContext, load_prompt_model
from nlp_lstm.run_folder import ModelFolderError

PROMPTS = ["the movie was", "", "The ACTING, the story!", "qqq zzz", "great " * 300]

# Runs in a fresh interpreter that cannot import nlp_lstm (nor find it on its path): TensorFlow alone.
LOADER = r"""
import json, sys
sys.modules["nlp_lstm"] = None  # any import of nlp_lstm now fails
sys.path = [p for p in sys.path if p not in ("", ".")]
import numpy as np, tensorflow as tf
answers = []
for path, ids in zip(json.loads(sys.argv[1]), json.loads(sys.argv[3])):
    served = tf.saved_model.load(path)
    out = served.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
    states = tf.zeros([1] + served.signatures["step"].structured_input_signature[1]["states"].shape.as_list()[1:])
    steps = []
    for token in ids:
        result = served.signatures["step"](token_ids=tf.constant([token], tf.int64), states=states)
        states = result["states"]
        steps.append(result["logits"].numpy()[0].tolist())
    answers.append({
        "signatures": sorted(served.signatures),
        "words": [[w.decode("utf-8") for w in row] for row in out["words"].numpy()],
        "probabilities": out["probabilities"].numpy().tolist(),
        "step_logits": steps,
        "states": states.numpy().tolist(),
    })
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("export") / "nextword")


def test_export_round_trip_without_nlp_lstm_equals_the_in_memory_model(tmp_path):
    folders = [write_model_folder(tmp_path / f"nextword{n}", num_layers=n) for n in (1, 2)]
    paths = [export_nextword(str(folder), str(tmp_path / f"exports{i}"), top_k=4) for i, folder in enumerate(folders)]
    assert paths[0] == tmp_path / "exports0" / "1"
    mask = os.umask(0o022)
    os.umask(mask)
    for path in [paths[0], *paths[0].rglob("*")]:  # readable by a server of another user (umask 022: 0755, 0644)
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~mask, path
    assert (paths[0] / "assets.extra" / "vocabulary.txt").read_text(encoding="utf-8") == (
        folders[0] / "vocabulary.txt"
    ).read_text(encoding="utf-8")
    loaded = [load_prompt_model(str(folder)) for folder in folders]
    ids = [[decoder.boundary_id] + tokenizer.ids("the movie was great") for decoder, tokenizer in loaded]
    process = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps([str(p) for p in paths]), json.dumps(PROMPTS), json.dumps(ids)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    for (decoder, tokenizer), served, token_ids in zip(loaded, json.loads(process.stdout.splitlines()[-1]), ids):
        assert served["signatures"] == ["serving_default", "step"]
        context = TypedContext(decoder, tokenizer)
        for text, words, probabilities in zip(PROMPTS, served["words"], served["probabilities"]):
            context.clear()
            context.update(text + " ")
            expected = context.suggestions(4)
            assert words == [w for w, _ in expected], text
            np.testing.assert_allclose(probabilities, [p for _, p in expected], atol=1e-5)
        states = decoder.initial_states(1)
        for token, served_logits in zip(token_ids, served["step_logits"]):
            logits, states = decoder.step(np.array([token]), states)
            np.testing.assert_allclose(served_logits, logits[0], atol=1e-5)
        np.testing.assert_allclose(served["states"], states, atol=1e-5)


def test_each_export_is_a_new_version(model_dir, tmp_path):
    first = export_nextword(str(model_dir), str(tmp_path))
    second = export_nextword(str(model_dir), str(tmp_path))
    assert (first.name, second.name) == ("1", "2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]  # no temporary folder left behind


def test_export_of_a_bad_folder_says_why(tmp_path):
    with pytest.raises(ModelFolderError, match="is not a folder"):
        export_nextword(str(tmp_path / "missing"), str(tmp_path / "exports"))
    (tmp_path / "sentiment").mkdir()
    (tmp_path / "sentiment" / "config.json").write_text('{"app": "sentiment"}')
    with pytest.raises(ModelFolderError, match="not a nextword model"):
        export_nextword(str(tmp_path / "sentiment"), str(tmp_path / "exports"))
    assert not (tmp_path / "exports").exists()


def test_cli_export_dispatches_on_the_app(model_dir, tmp_path, capsys):
    from nlp_lstm.cli import main

    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "exports")]) == 0
    assert (tmp_path / "exports" / "1" / "saved_model.pb").exists()


def test_docstring_examples_run(model_dir):
    assert doctest.testmod(nextword_export, extraglobs={"model_dir": str(model_dir)}).failed == 0
