"""Tests of nlp_lstm.nextword.generate: the state-carrying decoder, the next-token rules, the generation loop."""

from __future__ import annotations

import doctest

import keras
import numpy as np
import pytest

from nlp_lstm.nextword import generate
from nlp_lstm.nextword.config import NextWordModelConfig
from nlp_lstm.nextword.generate import BeamSearch, Decoder, Greedy, Temperature, TopK, TopP, WordTokenizer
from nlp_lstm.nextword.generate import generate as run
from nlp_lstm.nextword.model import build_nextword_model

VOCABULARY = ["", "[UNK]", "[BOS]"] + [f"w{i}" for i in range(27)]


def make_decoder(num_layers: int = 1, tie: bool = True, seed: int = 0) -> Decoder:
    keras.utils.set_random_seed(seed)
    units = 8
    config = NextWordModelConfig(len(VOCABULARY), units if tie else 6, units, num_layers, tie_embeddings=tie)
    model = build_nextword_model(config)
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # larger than the initialisers' weights: states that move, logits that differ
        weight.assign(rng.normal(0, 1.5 / np.sqrt(weight.shape[0]), weight.shape).astype("float32"))
    return Decoder(model, VOCABULARY)


@pytest.mark.parametrize("num_layers, tie", [(1, True), (2, False)])
def test_incremental_decoding_equals_rereading_the_prefix(num_layers, tie):
    decoder = make_decoder(num_layers, tie)
    ids = np.random.default_rng(1).integers(3, len(VOCABULARY), 40)
    logits, states = decoder.start()
    for n, token in enumerate(ids, 1):
        logits, states = decoder.step(np.array([token]), states)
        if n in (1, 2, 7, 40):
            reread = decoder.read_prefix([decoder.boundary_id, *ids[:n]])
            np.testing.assert_allclose(logits, reread, atol=1e-5)
            suggested, resuggested = decoder.suggestion_log_probs(logits), decoder.suggestion_log_probs(reread)
            np.testing.assert_allclose(suggested, resuggested, atol=1e-5)
    # feed() (one run of the layer's loop) lands on the same state as 40 steps
    _, fed = decoder.feed(list(ids), decoder.start()[1])
    np.testing.assert_allclose(fed, states, atol=1e-5)
    np.testing.assert_allclose(decoder.logits(states), logits, atol=1e-5)


def test_a_batch_of_rows_steps_independently():
    decoder = make_decoder()
    logits, states = decoder.start(batch_size=3)
    logits, states = decoder.step(np.array([5, 6, 5]), states)
    np.testing.assert_allclose(logits[0], logits[2], atol=1e-6)
    assert not np.allclose(logits[0], logits[1])


FIXED = np.log(np.array([[0.0, 0.1, 0.0, 0.4, 0.3, 0.15, 0.05]]) + 1e-30)  # ids 0..6


def sample_counts(rule, seeds: int = 400) -> np.ndarray:
    counts = np.zeros(FIXED.shape[1], int)
    for seed in range(seeds):
        _, tokens, _ = rule.select(FIXED, np.zeros(1), np.random.default_rng(seed))
        counts[tokens[0]] += 1
    return counts


def test_rules_on_fixed_log_probs():
    rng = np.random.default_rng(0)
    assert Greedy().select(FIXED, np.zeros(1), rng)[1].tolist() == [3]
    top2 = sample_counts(TopK(2))
    assert set(np.flatnonzero(top2)) == {3, 4}
    assert abs(top2[3] / top2.sum() - 0.4 / 0.7) < 0.08  # renormalised over the kept two
    nucleus = sample_counts(TopP(0.8))  # 0.4 + 0.3 < 0.8 <= 0.4 + 0.3 + 0.15
    assert set(np.flatnonzero(nucleus)) == {3, 4, 5}
    assert set(np.flatnonzero(sample_counts(TopP(0.01)))) == {3}  # the top token always stays
    assert set(np.flatnonzero(sample_counts(Temperature(0.01)))) == {3}  # cold: greedy
    hot = sample_counts(Temperature(1.0))
    assert set(np.flatnonzero(hot)) <= {1, 3, 4, 5, 6} and hot[3] > hot[6]
    parents, tokens, scores = BeamSearch(3).select(FIXED, np.zeros(1), None)
    assert tokens.tolist() == [3, 4, 5] and parents.tolist() == [0, 0, 0]
    np.testing.assert_allclose(np.exp(scores), [0.4, 0.3, 0.15])


@pytest.mark.parametrize(
    "rule", [lambda: TopK(0), lambda: TopP(0.0), lambda: TopP(1.5), lambda: Temperature(0), lambda: BeamSearch(0)]
)
def test_bad_rule_arguments_are_refused(rule):
    with pytest.raises(ValueError):
        rule()


class MarkovDecoder:
    """A fake decoder over tokens 0..3 where greedy is not the best continuation: the state is the token.

    From the start: 'a' (1) 0.6 then anything at 0.34, or 'b' (2) 0.4 then 'c' (3) 0.9.
    Greedy takes a (0.6 * 0.34 = 0.204); the best pair is b c (0.4 * 0.9 = 0.36).
    """

    vocabulary = ["", "a", "b", "c"]
    table = np.log(np.array([[1e-9, 0.6, 0.4, 1e-9], [1e-9, 0.33, 0.33, 0.34], [1e-9, 0.05, 0.05, 0.9],
                             [1e-9, 0.34, 0.33, 0.33]]))  # fmt: skip

    def suggestion_log_probs(self, logits):
        return generate.suggestion_log_probs(logits, np.array([0]))

    def step(self, tokens, states):
        return self.table[tokens], np.asarray(tokens)[:, None]


def test_beam_search_finds_what_greedy_misses():
    fake = MarkovDecoder()
    start_logits, start_state = fake.table[:1], np.zeros((1, 1))
    greedy = run(fake, start_logits, start_state, 2, Greedy())
    beam = run(fake, start_logits, start_state, 2, BeamSearch(2))
    assert greedy.words[0] == "a" and beam.words == ["b", "c"]
    assert beam.log_prob == pytest.approx(np.log(0.36)) and beam.log_prob > greedy.log_prob


def test_seeded_sampling_repeats_and_seeds_differ():
    decoder = make_decoder()
    logits, states = decoder.start()
    runs = {seed: run(decoder, logits, states, 12, TopP(0.95), seed=seed).token_ids for seed in (1, 1, 2, 3)}
    assert run(decoder, logits, states, 12, TopP(0.95), seed=1).token_ids == runs[1]
    assert len({tuple(v) for v in runs.values()}) > 1


def test_unk_padding_and_boundary_are_never_suggested_or_generated():
    decoder = make_decoder()
    bias = decoder.model.output_bias
    bias.assign(np.where(np.arange(len(VOCABULARY)) < 3, 50.0, 0.0).astype("float32"))  # they would win
    logits, states = decoder.start()
    assert {w for w, _ in decoder.suggestions(logits, 5)}.isdisjoint({"", "[UNK]", "[BOS]"})
    for rule in (Greedy(), TopK(3), TopP(0.9), Temperature(2.0), BeamSearch(3)):
        assert min(run(decoder, logits, states, 6, rule, seed=0).token_ids) >= 3
    probs = [p for _, p in decoder.suggestions(logits, len(VOCABULARY))]
    assert sum(probs) == pytest.approx(1.0)  # renormalised over the suggestible words


def test_suggestions_filter_by_prefix_and_tokenizer_matches_training_standardisation():
    decoder = make_decoder()
    logits, _ = decoder.start()
    assert {w for w, _ in decoder.suggestions(logits, 20, prefix="w1")} == {"w1"} | {f"w1{i}" for i in range(10)}
    assert decoder.suggestions(logits, 3, prefix="zz") == []
    assert WordTokenizer(VOCABULARY).rows(["W1, w2!", "", "<br />w3 qq"]) == [[4, 5], [], [6, 1]]


def test_docstring_examples_run():
    assert doctest.testmod(generate).failed == 0
