"""--precision mixed_bfloat16: both apps train, save, load and answer with bfloat16 where they say, and
float32 where they say; the answers agree with the same weights in float32 to bfloat16's precision."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_tiny_aclimdb
from nextword_helpers import toy_corpus_file

from nlp_lstm.cli import main
from nlp_lstm.cli.common import note_precision
from nlp_lstm.nextword.config import NextWordConfig, NextWordModelConfig
from nlp_lstm.sentiment.config import SentimentConfig


def test_sentiment_trains_in_mixed_bfloat16_and_agrees_with_float32(tmp_path):
    import keras

    import nlp_lstm.sentiment
    from nlp_lstm.sentiment.model import build_sentiment_model, positive_probability

    out = tmp_path / "model"
    data = write_tiny_aclimdb(tmp_path)
    assert main(["train", "sentiment", "--dry-run", "--data", str(data), "--out", str(out),
                 "--precision", "mixed_bfloat16"]) == 0  # fmt: skip
    loaded = nlp_lstm.sentiment.load(str(out))
    model = loaded.model
    assert model.get_layer("embedding").compute_dtype == "bfloat16"
    assert model.get_layer("bilstm").forward_layer.compute_dtype == "bfloat16"
    assert model.get_layer("probability").compute_dtype == "float32"
    assert all(w.dtype == "float32" for w in model.weights)  # weights stay float32
    # The oracle: the same weights in a float32 model.
    config = loaded.config
    reference = build_sentiment_model(SentimentConfig.from_dict({**config.__dict__, "precision": "float32"}),
                                      model.get_layer("embedding").input_dim)  # fmt: skip
    reference.set_weights(model.get_weights())
    ids = np.array([[2, 3, 4, 5, 0, 0], [6, 7, 0, 0, 0, 0]])
    low, high = np.asarray(positive_probability(model, ids)), np.asarray(positive_probability(reference, ids))
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, high, atol=0.02)
    first, empty = loaded.predict(["A wonderful film.", ""])
    assert 0.0 <= first.probability <= 1.0 and first.judged and not empty.judged
    keras.mixed_precision.set_global_policy("float32")  # nothing above changed the global policy
    assert keras.mixed_precision.global_policy().name == "float32"


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


def test_precision_is_checked_and_older_folders_read_float32():
    for config_class, extra in ((SentimentConfig, {}), (NextWordModelConfig, {"vocab_size": 10})):
        with pytest.raises(ValueError, match="precision must be one of float32, mixed_bfloat16"):
            config_class(precision="float16", **extra)
    assert SentimentConfig.from_dict({"units": 8}).precision == "float32"  # a config.json from before
    assert NextWordConfig.from_dict({"units": 8, "embedding_dim": 8}).precision == "float32"


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
