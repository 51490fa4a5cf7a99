"""`train nextword --precision mixed_bfloat16`: the model trains, saves, loads and answers with bfloat16
where it says, float32 where it says; its answers agree with the same weights in float32 to bfloat16's
precision. (The sentiment app has no such flag: it measured no gain there, docs/benchmarks.md.)"""

from __future__ import annotations

import numpy as np
import pytest
from nextword_helpers import toy_corpus_file

from nlp_lstm.cli import main
from nlp_lstm.cli.common import note_precision
from nlp_lstm.nextword.config import NextWordConfig, NextWordModelConfig


def test_nextword_trains_in_mixed_bfloat16_and_agrees_with_float32(tmp_path):
    import nlp_lstm.nextword
    from nlp_lstm.nextword.model import build_nextword_model

    out = tmp_path / "model"
    flags = ["train", "nextword", "--corpus", str(toy_corpus_file(tmp_path)), "--dry-run", "--out", str(out)]
    assert main([*flags, "--precision", "mixed_bfloat16"]) == 0
    words = nlp_lstm.nextword.load(str(out))
    model = words.folder.model
    assert model.config.precision == "mixed_bfloat16"
    assert model.embedding.compute_dtype == "bfloat16" and model.lstm_layers[0].compute_dtype == "bfloat16"
    reference = build_nextword_model(NextWordModelConfig(**{**model.config.__dict__, "precision": "float32"}))
    reference.set_weights(model.get_weights())
    ids = np.array([[2, 3, 4, 5]])
    logits = np.asarray(model.logits(model(ids)))
    assert logits.dtype == np.float32  # the projection computes in float32
    np.testing.assert_allclose(logits, np.asarray(reference.logits(reference(ids))), atol=0.05)
    suggestions = words.suggest("the ", k=2)
    assert len(suggestions) == 2 and all(0.0 <= p <= 1.0 for _, p in suggestions)
    # The export's step signature takes and gives float32 states, so a client can feed them back.
    import tensorflow as tf

    assert main(["export", "--model", str(out), "--out", str(tmp_path / "export")]) == 0
    step = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["step"]
    assert {k: v.dtype for k, v in step.structured_outputs.items()} == {"states": tf.float32, "logits": tf.float32}
    states = step(token_ids=tf.constant([2, 3], "int64"), states=tf.zeros((2, 2, model.config.units)))["states"]
    step(token_ids=tf.constant([4, 5], "int64"), states=states)


def test_precision_is_checked_and_older_folders_read_float32(capsys):
    for config_class, extra in ((NextWordConfig, {}), (NextWordModelConfig, {"vocab_size": 10})):
        with pytest.raises(ValueError, match="precision must be one of float32, mixed_bfloat16"):
            config_class(precision="float16", **extra)
    assert NextWordConfig.from_dict({"units": 8, "embedding_dim": 8}).precision == "float32"  # a folder from before
    with pytest.raises(SystemExit):
        main(["train", "sentiment", "--precision", "mixed_bfloat16"])  # no such flag there
    assert "unrecognized arguments: --precision" in capsys.readouterr().err


def test_bfloat16_on_a_cpu_without_bf16_says_it_will_be_slow(monkeypatch, capsys):
    from nlp_lstm import machine

    monkeypatch.setattr(machine, "vector_extensions", lambda: ["avx2", "fma"])
    note_precision("float32")
    assert capsys.readouterr().err == ""
    note_precision("mixed_bfloat16")
    assert "no BF16 instructions" in capsys.readouterr().err
    monkeypatch.setattr(machine, "vector_extensions", lambda: ["avx2", "avx512_bf16"])
    note_precision("mixed_bfloat16")
    assert capsys.readouterr().err == ""
