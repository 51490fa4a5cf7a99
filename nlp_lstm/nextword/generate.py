"""Next-word suggestions and continuations from a decoder that carries the LSTM state forward.

    token id + states --(Decoder.step: one LSTM step, compiled)--> logits + states
    logits --(suggestion_log_probs: '', [UNK], [BOS] removed)--> log-probabilities
    log-probabilities --(a NextTokenRule: greedy, top-k, top-p, temperature, beam)--> next tokens

A typed word costs one step; nothing re-reads the prefix (`Decoder.read_prefix` does, and exists
so that the tests and the latency benchmark can compare against it).

There is one generation loop, `generate`. It keeps a small batch of hypotheses (one for the sampling
rules, `width` for beam search) with their scores, asks the rule which (parent, token) pairs go on,
reorders the states by parent and takes one step. Each rule is a few lines of numpy; sampling
draws from a `numpy.random.Generator`, so a seed repeats a continuation exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tensorflow as tf

from nlp_lstm.nextword.model import NextWordModel
from nlp_lstm.text import BOUNDARY_TOKEN, OOV_TOKEN, PAD_TOKEN, VectorizerConfig, vectorizer_from_vocabulary

# Never suggested nor generated: padding, out-of-vocabulary, and the review boundary (it means "a new
# review starts", not a word).
NEVER_SUGGESTED = (PAD_TOKEN, OOV_TOKEN, BOUNDARY_TOKEN)


def banned_ids(vocabulary: Sequence[str]) -> np.ndarray:
    """Ids of the tokens never suggested ('', [UNK], [BOS]): the prompt, evaluation and the export ban the same.

    Example:

    >>> from nlp_lstm.nextword.generate import banned_ids
    >>> banned_ids(["", "[UNK]", "[BOS]", "the", "movie"]).tolist()
    [0, 1, 2]
    """
    return np.array([i for i, token in enumerate(vocabulary) if token in NEVER_SUGGESTED], np.int64)


class WordTokenizer:
    """Text -> token ids with the model's own vocabulary and `nlp_lstm.text.standardize`.

    Example:

    >>> from nlp_lstm.nextword.generate import WordTokenizer
    >>> WordTokenizer(["", "[UNK]", "[BOS]", "good", "film"]).ids("A GOOD film!")
    [1, 3, 4]
    """

    def __init__(self, vocabulary: Sequence[str]):
        vectorizer = vectorizer_from_vocabulary(vocabulary, VectorizerConfig())
        # Compiled once: an eager call of the layer costs milliseconds of Python per word.
        self._vectorize = tf.function(
            lambda texts: vectorizer(texts), input_signature=[tf.TensorSpec([None], tf.string)]
        )

    def ids(self, text: str) -> list[int]:
        """The token ids of `text` (no boundary token)."""
        return self.rows([text])[0]

    def rows(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text, in one call (a pasted paragraph is one call, not one per word)."""
        if not texts:
            return []
        ids = self._vectorize(tf.constant(list(texts), tf.string))
        rows = ids.to_list() if isinstance(ids, tf.RaggedTensor) else ids.numpy().tolist()
        return [[int(i) for i in row if i != 0] for row in rows]


class Decoder:
    """Runs a trained `NextWordModel` one token at a time, on numpy arrays.

    Args:
        model: The next-word model.
        vocabulary: Its vocabulary ('' first, '[UNK]' second, '[BOS]' among the reserved tokens).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import Decoder
    >>> from nlp_lstm.nextword.config import NextWordModelConfig
    >>> from nlp_lstm.nextword.model import build_nextword_model
    >>> vocabulary = ["", "[UNK]", "[BOS]"] + [f"w{i}" for i in range(47)]
    >>> decoder = Decoder(build_nextword_model(NextWordModelConfig(50, 8, 8)), vocabulary)
    >>> logits, states = decoder.start()
    >>> logits, states = decoder.step(np.array([7]), states)
    >>> reread = decoder.read_prefix([decoder.boundary_id, 7])
    >>> bool(np.allclose(logits, reread, atol=1e-5))
    True
    """

    def __init__(self, model: NextWordModel, vocabulary: Sequence[str]):
        self.model = model
        self.vocabulary = [str(token) for token in vocabulary]
        if len(self.vocabulary) != model.config.vocab_size:
            raise ValueError(f"the vocabulary has {len(self.vocabulary)} tokens, the model {model.config.vocab_size}")
        if BOUNDARY_TOKEN not in self.vocabulary:
            raise ValueError(f"the vocabulary has no boundary token {BOUNDARY_TOKEN!r}")
        self.boundary_id = self.vocabulary.index(BOUNDARY_TOKEN)
        self.banned_ids = banned_ids(self.vocabulary)
        config = model.config
        state_spec = tf.TensorSpec([None, config.state_width, config.units], tf.float32)
        self._step = tf.function(model.step, input_signature=[tf.TensorSpec([None], tf.int32), state_spec])
        self._features = tf.function(
            lambda ids, states: model.features(ids, states),
            input_signature=[tf.TensorSpec([None, None], tf.int32), state_spec],
        )
        self._logits = tf.function(
            lambda states: model.logits(states[:, -2]), input_signature=[state_spec]
        )  # states[:, -2] is the top layer's h
        # Suggestible words in alphabetical order: the words that start with a prefix are one slice.
        by_word = sorted((word, i) for i, word in enumerate(self.vocabulary) if word not in NEVER_SUGGESTED)
        self._sorted_words = [word for word, _ in by_word]
        self._sorted_ids = np.array([i for _, i in by_word], np.int64)

    def initial_states(self, batch_size: int = 1) -> np.ndarray:
        """Zero states (batch_size, 2 * num_layers, units): before any token."""
        config = self.model.config
        return np.zeros((batch_size, config.state_width, config.units), np.float32)

    def step(self, token_ids: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feeds one token per row: (batch,) ids, (batch, 2L, units) states -> (logits (batch, vocab), states)."""
        logits, states = self._step(np.asarray(token_ids, np.int32), np.asarray(states, np.float32))
        return logits.numpy(), states.numpy()

    def start(self, batch_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Logits and states after the boundary token that starts every text."""
        return self.step(np.full(batch_size, self.boundary_id), self.initial_states(batch_size))

    def feed(self, token_ids: Sequence[int], states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feeds several tokens to one sequence (1, 2L, units): one step each, or one loop for many."""
        if len(token_ids) == 0:
            return self.logits(states), states
        if len(token_ids) == 1:
            return self.step(np.array(token_ids), states)
        # A pasted paragraph runs through the layer's loop in one call, not a Python loop of steps.
        _, states = self._features(np.array([token_ids], np.int32), np.asarray(states, np.float32))
        return self.logits(states.numpy()), states.numpy()

    def logits(self, states: np.ndarray) -> np.ndarray:
        """The next-token logits (batch, vocab) that states (batch, 2L, units) stand for."""
        return self._logits(np.asarray(states, np.float32)).numpy()

    def read_prefix(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits (1, vocab) after re-reading a whole prefix from zero states: the slow way."""
        return self.feed(list(token_ids), self.initial_states(1))[0]

    def suggestion_log_probs(self, logits: np.ndarray) -> np.ndarray:
        """Log-probabilities over the vocabulary, the tokens never suggested removed (-inf), renormalised."""
        return suggestion_log_probs(logits, self.banned_ids)

    def suggestions(self, logits: np.ndarray, k: int = 3, prefix: str = "") -> list[tuple[str, float]]:
        """The k likeliest next words (word, probability) of one row of logits, best first.

        With `prefix`, only words that start with it (the word being typed), like a phone keyboard.
        """
        return self.best_words(self.suggestion_log_probs(np.asarray(logits).reshape(1, -1))[0], k, prefix)

    def best_words(self, log_probs: np.ndarray, k: int = 3, prefix: str = "") -> list[tuple[str, float]]:
        """`suggestions` from log-probabilities (vocab,) already computed by `suggestion_log_probs`."""
        if prefix:
            lo = bisect.bisect_left(self._sorted_words, prefix)
            hi = bisect.bisect_left(self._sorted_words, prefix + "\U0010ffff")
            candidates = self._sorted_ids[lo:hi]
        else:
            candidates = self._sorted_ids
        if candidates.size == 0 or k < 1:
            return []
        best = candidates[_top_indices(log_probs[candidates], k)]
        return [(self.vocabulary[i], float(np.exp(log_probs[i]))) for i in best]


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, largest first (ties: lower index first)."""
    k = min(k, scores.size)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]


def suggestion_log_probs(logits: np.ndarray, banned_ids: np.ndarray) -> np.ndarray:
    """Log-softmax of `logits` (batch, vocab) with `banned_ids` removed (-inf) and the rest renormalised.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import suggestion_log_probs
    >>> np.exp(suggestion_log_probs(np.log([[0.5, 0.25, 0.25]]), np.array([0]))).round(3).tolist()
    [[0.0, 0.5, 0.5]]
    """
    logits = np.array(logits, np.float64)  # a copy, in float64: a softmax over 20,000 words
    logits[:, banned_ids] = -np.inf
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


class NextTokenRule(Protocol):
    """Chooses how the hypotheses go on, from their next-token log-probabilities.

    `select(log_probs (beams, vocab), scores (beams,), rng)` returns (parents, tokens, scores): for each
    new hypothesis, the row it extends, its next token and its total log-probability under the model.
    """

    def select(
        self, log_probs: np.ndarray, scores: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _sample(log_probs: np.ndarray, kept: np.ndarray, scores: np.ndarray, rng: np.random.Generator, temperature: float):
    """Draws one token per row among the `kept` (mask, (beams, vocab)) tokens, at `temperature`."""
    rows = np.arange(log_probs.shape[0])
    weights = np.where(kept, log_probs / temperature, -np.inf)
    weights = np.exp(weights - weights.max(axis=-1, keepdims=True))
    cumulative = np.cumsum(weights, axis=-1)
    draws = rng.random(log_probs.shape[0]) * cumulative[:, -1]
    tokens = np.minimum((cumulative <= draws[:, None]).sum(axis=-1), log_probs.shape[1] - 1)
    return rows, tokens, scores + log_probs[rows, tokens]


@dataclass(frozen=True)
class Greedy:
    """The likeliest token, always.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import Greedy
    >>> Greedy().select(np.log([[0.2, 0.5, 0.3]]), np.zeros(1), np.random.default_rng(0))[1].tolist()
    [1]
    """

    def select(self, log_probs, scores, rng):
        rows = np.arange(log_probs.shape[0])
        tokens = np.argmax(log_probs, axis=-1)
        return rows, tokens, scores + log_probs[rows, tokens]


@dataclass(frozen=True)
class Temperature:
    """Samples from the distribution sharpened (< 1) or flattened (> 1) by `temperature`."""

    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.temperature < np.inf:  # NaN fails this too
            raise ValueError(f"temperature must be finite and > 0, got {self.temperature!r}")

    def select(self, log_probs, scores, rng):
        return _sample(log_probs, np.isfinite(log_probs), scores, rng, self.temperature)


@dataclass(frozen=True)
class TopK:
    """Samples among the `k` likeliest tokens (Fan et al. 2018).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import TopK
    >>> log_probs = np.log([[0.1, 0.6, 0.3]])
    >>> {int(TopK(2).select(log_probs, np.zeros(1), np.random.default_rng(s))[1][0]) for s in range(50)}
    {1, 2}
    """

    k: int
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 < self.temperature < np.inf:
            raise ValueError(
                f"top-k needs k >= 1 and a finite temperature > 0, got {self.k!r} and {self.temperature!r}"
            )

    def select(self, log_probs, scores, rng):
        k = min(self.k, log_probs.shape[1])
        kth = -np.partition(-log_probs, k - 1, axis=-1)[:, k - 1 : k]  # (beams, 1)
        return _sample(log_probs, log_probs >= kth, scores, rng, self.temperature)


@dataclass(frozen=True)
class TopP:
    """Samples from the smallest set of tokens whose probability reaches `p` (nucleus; Holtzman et al. 2020).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import TopP
    >>> log_probs = np.log([[0.05, 0.6, 0.35]])
    >>> {int(TopP(0.9).select(log_probs, np.zeros(1), np.random.default_rng(s))[1][0]) for s in range(50)}
    {1, 2}
    """

    p: float
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.p <= 1.0 or not 0 < self.temperature < np.inf:
            raise ValueError(
                f"top-p needs p in (0, 1] and a finite temperature > 0, got {self.p!r} and {self.temperature!r}"
            )

    def select(self, log_probs, scores, rng):
        order = np.argsort(-log_probs, axis=-1, kind="stable")  # (beams, vocab), likeliest first
        sorted_probs = np.exp(np.take_along_axis(log_probs, order, axis=-1))
        # Keep a token if the tokens before it have not reached p yet: the first one always stays.
        before = np.cumsum(sorted_probs, axis=-1) - sorted_probs
        kept = np.zeros_like(log_probs, dtype=bool)
        np.put_along_axis(kept, order, before < self.p, axis=-1)
        return _sample(log_probs, kept & np.isfinite(log_probs), scores, rng, self.temperature)


@dataclass(frozen=True)
class BeamSearch:
    """Keeps the `width` likeliest continuations; returns the best one (deterministic).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import BeamSearch
    >>> parents, tokens, scores = BeamSearch(2).select(np.log([[0.2, 0.5, 0.3]]), np.zeros(1), None)
    >>> parents.tolist(), tokens.tolist(), np.exp(scores).round(2).tolist()
    ([0, 0], [1, 2], [0.5, 0.3])
    """

    width: int

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"beam width must be >= 1, got {self.width!r}")

    def select(self, log_probs, scores, rng):
        vocab = log_probs.shape[1]
        totals = (scores[:, None] + log_probs).reshape(-1)  # (beams * vocab,)
        best = _top_indices(np.where(np.isfinite(totals), totals, -np.inf), min(self.width, totals.size))
        best = best[np.isfinite(totals[best])]
        return best // vocab, best % vocab, totals[best]


@dataclass(frozen=True)
class Continuation:
    """What `generate` returns: the new token ids, their words, and their total log-probability."""

    token_ids: list[int]
    words: list[str]
    log_prob: float


def generate(
    decoder: Decoder,
    logits: np.ndarray,
    states: np.ndarray,
    num_words: int,
    rule: NextTokenRule,
    seed: int | None = None,
) -> Continuation:
    """Continues a text by `num_words` words, from its logits (1, vocab) and states (1, 2L, units).

    Args:
        decoder: The state-carrying decoder.
        logits, states: Where the text stands (from `Decoder.start`, `step` or `feed`).
        num_words: Words to add.
        rule: Greedy(), Temperature(t), TopK(k), TopP(p) or BeamSearch(width).
        seed: Seed of the sampling rules; the same seed gives the same continuation.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import Decoder, TopP, generate
    >>> from nlp_lstm.nextword.config import NextWordModelConfig
    >>> from nlp_lstm.nextword.model import build_nextword_model
    >>> vocabulary = ["", "[UNK]", "[BOS]"] + [f"w{i}" for i in range(47)]
    >>> decoder = Decoder(build_nextword_model(NextWordModelConfig(50, 8, 8)), vocabulary)
    >>> logits, states = decoder.start()
    >>> first = generate(decoder, logits, states, 5, TopP(0.9), seed=7)
    >>> first == generate(decoder, logits, states, 5, TopP(0.9), seed=7), len(first.words)
    (True, 5)
    """
    if num_words < 0:
        raise ValueError(f"num_words must be >= 0, got {num_words!r}")
    rng = np.random.default_rng(seed)
    sequences = np.zeros((1, 0), np.int64)  # (beams, words so far)
    scores = np.zeros(1)  # (beams,)
    logits, states = np.asarray(logits), np.asarray(states)
    for position in range(num_words):
        log_probs = decoder.suggestion_log_probs(logits)  # (beams, vocab)
        parents, tokens, scores = rule.select(log_probs, scores, rng)
        sequences = np.concatenate([sequences[parents], tokens[:, None]], axis=1)
        if position + 1 < num_words:  # the last step's logits would go unused
            logits, states = decoder.step(tokens, states[parents])
    best = int(np.argmax(scores))
    ids = [int(i) for i in sequences[best]]
    return Continuation(ids, [decoder.vocabulary[i] for i in ids], float(scores[best]))
