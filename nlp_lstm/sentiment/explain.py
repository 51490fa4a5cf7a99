"""Why a verdict: a signed contribution per word, per member, and combined.

The model's P(pos) is the mean of two members' probabilities, p_lstm = sigmoid(z_lstm) and
p_ngram = sigmoid(z_ngram). Each member's contributions are in its logit's units:

- n-gram member, exact: z_ngram = bias + the sum of one weight per distinct n-gram of the review
  (`nlp_lstm.sentiment.ngrams`). A word's weight goes to the word, shared equally between its
  occurrences (a distinct n-gram counts once); a pair's weight is split in halves between its two
  words, likewise shared between the pair's occurrences. So the contributions add up to z_ngram - bias.
- LSTM member, integrated gradients (Sundararajan et al. 2017) on the word vectors: the baseline is
  the same review with every word vector zero (same length, same mask: "no word information"),
  `steps` midpoint-rule steps from it to the review; a word's contribution is its vector's difference
  from the baseline times the mean gradient of z_lstm, summed over the vector. They add up to
  z_lstm(review) - z_lstm(baseline), to the accuracy of the integral (the tests hold it to 0.01 plus
  1% of that difference).
- combined, the tint: each member's contributions times the derivative of P(pos) with respect to
  that member's logit, dP/dz_m = p_m (1 - p_m) / 2, summed over the members: a first-order estimate
  of how much each word moves P(pos), in probability units.

Words are the review's tokens as the model reads them (standardised: lowercase, no punctuation; the
first `max_length`), each with its vocabulary word ("[UNK]" for a word the model does not know).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from nlp_lstm.data import LABEL_NAMES
from nlp_lstm.sentiment.model import lstm_member_logit, vectorize_texts
from nlp_lstm.text import OOV_ID, standardize, text_bytes

if TYPE_CHECKING:  # not imported at run time: predict imports this module
    from nlp_lstm.sentiment.predict import SentimentModel

DEFAULT_STEPS = 64


@dataclass(frozen=True)
class Explanation:
    """The contributions of each word of a text to the verdict.

    `members` maps "lstm" (and "ngram" where the model has it) to one contribution per word (logit
    units); `combined` is one per word in P(pos) units; `logits` and `probabilities` are each member's;
    `baseline_logit` is the LSTM member's on the all-zero word vectors.
    """

    words: list[str]
    known: list[bool]
    chunks: list[tuple[str, list[int]]] | None  # the text's own white-space-separated pieces, each with its words
    members: dict[str, list[float]]
    combined: list[float]
    logits: dict[str, float]
    probabilities: dict[str, float]
    baseline_logit: float
    probability: float
    label: str
    judged: bool
    steps: int

    def to_json(self) -> dict:
        return {
            "words": self.words,
            "known": self.known,
            "chunks": self.chunks,
            "combined": self.combined,
            "members": self.members,
            "logits": self.logits,
            "probabilities": self.probabilities,
            "baseline_logit": self.baseline_logit,
            "probability": self.probability,
            "label": self.label,
            "judged": self.judged,
            "method": {
                "lstm": f"integrated gradients, zero word vectors as baseline, {self.steps} steps",
                "ngram": "exact: weights of the words and word pairs, pairs split between their words",
                "combined": "sum over members of contribution x dP/dlogit = p (1 - p) / 2",
            },
        }


def _words(text: bytes, max_length: int) -> list[str]:
    """The tokens the vectorizer reads (standardised, split on white space), the first `max_length`."""
    standardized = standardize(tf.constant([text]))[0].numpy().decode("utf-8", errors="replace")
    return standardized.split()[:max_length]


def _chunks(text: bytes, words: list[str]) -> list[tuple[str, list[int]]] | None:
    """The text's white-space-separated pieces, each with the indices of the words it gave, so that a page
    can tint the text as typed. None where a piece cannot be matched to its words (markup spanning a
    space, such as `<br />`, is one token boundary in the whole text and two pieces here)."""
    pieces = text.decode("utf-8", errors="replace").split()
    if not pieces:
        return None
    standardized = standardize(tf.constant([piece.encode() for piece in pieces])).numpy()
    tokens = [s.decode("utf-8", errors="replace").split() for s in standardized]
    counts = [len(piece_tokens) for piece_tokens in tokens]
    if [token for piece_tokens in tokens for token in piece_tokens][: len(words)] != words:
        return None
    chunks, start = [], 0
    for piece, count in zip(pieces, counts):
        end = min(start + count, len(words))  # the words past max_length are not read
        chunks.append((piece, list(range(start, end))))
        start = end
    return chunks


def ngram_contributions(loaded: SentimentModel, ids: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(contribution per position (time,), logit, bias) of the n-gram member for one review's ids (time,)."""
    model = loaded.model
    features = np.asarray(model.get_layer("ngram_ids")(ids[None, :]))[0]  # (2 * time - 1,): ids, then pairs
    layer = model.get_layer("ngram_probability")
    weights, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    time = len(ids)
    contributions = np.zeros(time, np.float64)
    distinct = {f for f in features.tolist() if f > 0}
    for feature in distinct:
        where = np.flatnonzero(features == feature)
        words = where[where < time]  # occurrences as a word
        pairs = where[where >= time] - time  # occurrences as the pair (j, j + 1)
        share = weights[feature] / (len(words) + len(pairs))
        contributions[words] += share
        contributions[pairs] += share / 2
        contributions[pairs + 1] += share / 2
    logit = float(bias[0] + sum(weights[f] for f in distinct))
    return contributions, logit, float(bias[0])


def lstm_contributions(loaded: SentimentModel, ids: np.ndarray, steps: int = DEFAULT_STEPS):
    """(contribution per position (time,), logit, baseline logit) of the LSTM member: integrated gradients."""
    model = loaded.model
    embedding = model.get_layer("embedding")
    ids_batch = tf.constant(ids[None, :])
    vectors = tf.cast(embedding(ids_batch), tf.float32)  # (1, time, dim)
    mask = tf.not_equal(ids_batch, 0)
    baseline = tf.zeros_like(vectors)
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps  # midpoints of [0, 1]
    path = baseline + alphas[:, None, None] * (vectors - baseline)  # (steps, time, dim)
    masks = tf.repeat(mask, steps, axis=0)
    with tf.GradientTape() as tape:
        tape.watch(path)
        logits = lstm_member_logit(model, path, masks)  # (steps,)
    gradients = tape.gradient(logits, path)  # (steps, time, dim)
    contributions = tf.reduce_sum((vectors - baseline)[0] * tf.reduce_mean(gradients, axis=0), axis=-1)
    logit = float(lstm_member_logit(model, vectors, mask)[0])
    baseline_logit = float(lstm_member_logit(model, baseline, mask)[0])
    return contributions.numpy().astype(np.float64), logit, baseline_logit


def explain(loaded: SentimentModel, text: str | bytes, steps: int = DEFAULT_STEPS) -> Explanation:
    """The contributions of each word of `text` to the model's verdict (see the module's docstring).

    Example (``model_dir``: a folder a tiny training wrote):

    >>> import nlp_lstm
    >>> from nlp_lstm.sentiment.explain import explain
    >>> why = explain(nlp_lstm.sentiment.load(model_dir), "A wonderful film!")
    >>> why.words, sorted(why.members)
    (['a', 'wonderful', 'film'], ['lstm', 'ngram'])
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 1024:
        raise ValueError(f"steps must be an integer in 1..1024, got {steps!r}")
    encoded = text_bytes(text)
    ids = vectorize_texts(loaded.vectorizer, tf.constant([encoded]), loaded.config.max_length).numpy()[0]
    time = int(np.count_nonzero(ids)) or 1  # an empty text reads one [UNK]
    ids = ids[:time]
    vocabulary = loaded.vectorizer.get_vocabulary()
    words = _words(encoded, loaded.config.max_length) or [vocabulary[OOV_ID]]
    members, logits, probabilities = {}, {}, {}
    lstm, logits["lstm"], baseline_logit = lstm_contributions(loaded, ids, steps)
    members["lstm"] = lstm
    has_ngram = any(layer.name == "ngram_probability" for layer in loaded.model.layers)
    if has_ngram:
        members["ngram"], logits["ngram"], _ = ngram_contributions(loaded, ids)
    combined = np.zeros(time)
    for name, logit in logits.items():
        p = 1 / (1 + math.exp(-logit))
        probabilities[name] = p
        combined += members[name] * p * (1 - p) / len(logits)
    probability = float(np.mean(list(probabilities.values())))
    judged = bool(np.any(ids > OOV_ID))
    return Explanation(
        words=words,
        known=[int(i) > OOV_ID for i in ids],
        chunks=_chunks(encoded, words),
        members={k: v.tolist() for k, v in members.items()},
        combined=combined.tolist(),
        logits=logits,
        probabilities=probabilities,
        baseline_logit=baseline_logit,
        probability=probability,
        label=LABEL_NAMES[int(probability >= 0.5)] if judged else "none",
        judged=judged,
        steps=steps,
    )
