"""Explanations of a sentiment verdict (nlp_lstm.sentiment.explain) against their oracles: the n-gram
member's contributions add up to its logit exactly, integrated gradients' to the LSTM member's logit minus
the baseline's, and the combined tint follows its stated rule; and the command and the API agree."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sentiment_helpers import tiny_sentiment_model

import nlp_lstm
from nlp_lstm.cli import main
from nlp_lstm.sentiment.explain import explain, ngram_contributions

TEXTS = ["A wonderful, moving film.", "Dull and far too long, dull dull.", "great great film film great", ""]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return nlp_lstm.sentiment.load(tiny_sentiment_model(tmp_path_factory)[1])


def member_logits(model, text: str) -> np.ndarray:
    """The members' logits as the model computes them (the oracle): log(p / (1 - p)) of its outputs."""
    import tensorflow as tf

    from nlp_lstm.sentiment.model import vectorize_texts

    ids = vectorize_texts(model.vectorizer, tf.constant([text]), model.config.max_length)
    p = np.asarray(model.model(ids), np.float64)[0]  # (members,)
    return np.log(p / (1 - p))


@pytest.mark.parametrize("text", TEXTS)
def test_the_ngram_contributions_add_up_to_its_logit_exactly(model, text):
    why = explain(model, text, steps=8)
    lstm_logit, ngram_logit = member_logits(model, text)
    bias = float(model.model.get_layer("ngram_probability").get_weights()[1][0])
    assert math.fsum(why.members["ngram"]) == pytest.approx(why.logits["ngram"] - bias, abs=1e-9)
    assert why.logits["ngram"] == pytest.approx(ngram_logit, abs=1e-4)


def test_a_repeated_word_and_its_pairs_share_their_weights():
    """By hand: ids [5, 6, 5] read words 5, 6 and pairs (5, 6), (6, 5); word 5 counts once, shared."""

    class Layer:
        def __init__(self, weights):
            self.weights = weights

        def get_weights(self):
            return self.weights

    class Model:
        def get_layer(self, name):
            return layers[name]

    rows = 10 + 4
    weights = np.zeros(rows)
    weights[5], weights[6] = 2.0, -1.0
    pair_56, pair_65 = 10 + (5 * 1_000_003 + 6) % 4, 10 + (6 * 1_000_003 + 5) % 4
    weights[pair_56] += 0.5
    weights[pair_65] += 0.25
    layers = {
        "ngram_ids": lambda ids: np.concatenate([ids, [[pair_56, pair_65]]], axis=1),
        "ngram_probability": Layer([weights, np.array([0.1])]),
    }
    loaded = type("Loaded", (), {"model": Model()})()
    contributions, logit, bias = ngram_contributions(loaded, np.array([5, 6, 5]))
    # word 5 (2.0) split over its 2 occurrences; pair (5, 6) (0.5) halved between positions 0 and 1;
    # pair (6, 5) (0.25) halved between positions 1 and 2
    assert contributions.tolist() == pytest.approx([1.0 + 0.25, -1.0 + 0.25 + 0.125, 1.0 + 0.125])
    assert logit == pytest.approx(0.1 + 2.0 - 1.0 + 0.5 + 0.25) and bias == 0.1


@pytest.mark.parametrize("text", TEXTS)
def test_integrated_gradients_add_up_to_the_logit_difference(model, text):
    why = explain(model, text, steps=64)
    lstm_logit, _ = member_logits(model, text)
    assert why.logits["lstm"] == pytest.approx(lstm_logit, abs=1e-4)
    difference = why.logits["lstm"] - why.baseline_logit
    assert abs(math.fsum(why.members["lstm"]) - difference) <= 0.01 + 0.01 * abs(difference)


def test_the_combined_tint_is_the_members_weighted_by_dp_dlogit(model):
    why = explain(model, TEXTS[0], steps=16)
    expected = np.zeros(len(why.words))
    for name, contributions in why.members.items():
        p = 1 / (1 + math.exp(-why.logits[name]))
        expected += np.asarray(contributions) * p * (1 - p) / 2
    assert np.allclose(why.combined, expected, atol=1e-12)
    assert why.probability == pytest.approx(model.predict(TEXTS[0])[0].probability, abs=1e-5)


def test_words_are_the_tokens_the_model_reads(model):
    """Oracle: the vectorizer's ids; a known word is its vocabulary entry, an unknown one reads [UNK]."""
    import tensorflow as tf

    from nlp_lstm.sentiment.model import vectorize_texts

    text = "A <br />WONDERFUL\x1b[31m film!! zzzunknownzzz film"
    why = explain(model, text, steps=4)
    ids = vectorize_texts(model.vectorizer, tf.constant([text]), model.config.max_length).numpy()[0]
    vocabulary = model.vectorizer.get_vocabulary()
    assert len(why.words) == len(why.combined) == len(why.known) == np.count_nonzero(ids)
    for word, known, token_id in zip(why.words, why.known, ids):
        assert (vocabulary[token_id] == word) if known else token_id == 1
    assert "zzzunknownzzz" in why.words and all("\x1b" not in word for word in why.words)
    empty = explain(model, "", steps=4)
    assert empty.label == "none" and not empty.judged and len(empty.words) == 1


def test_the_command_prints_json_and_plain_lines(model, capsys):
    folder = str(model.folder)
    assert main(["explain", "--model", folder, "--json", "--steps", "8", TEXTS[0]]) == 0
    printed = json.loads(capsys.readouterr().out)
    api = model.explain(TEXTS[0], steps=8)
    assert printed["words"] == api.words and np.allclose(printed["combined"], api.combined)
    assert main(["explain", "--model", folder, "--steps", "8", TEXTS[0]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(api.words) and lines[1].split("\t")[0] == api.words[0]
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--model", folder, "--steps", "2000", "x"])
    assert exit_info.value.code == 2


def test_bad_steps_are_refused(model):
    with pytest.raises(ValueError, match="steps"):
        explain(model, "fine", steps=0)
