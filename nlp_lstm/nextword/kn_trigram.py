"""An interpolated Kneser-Ney trigram: the yardstick `nlp-lstm evaluate nextword` holds the LSTM to.

Chen & Goodman (1998), interpolated, one absolute discount per order (D = n1 / (n1 + 2 n2) of that
order's counts), continuation counts below the top order:

    P3(w | u v) = (max(c(u v w) - D3, 0) + D3 * N1+(u v .) * P2(w | v)) / c(u v .)     [P2 if c(u v .) = 0]
    P2(w | v)   = (max(N1+(. v w) - D2, 0) + D2 * N1+(v .) * P1(w)) / N1+(. v .)     [P1 if N1+(. v .) = 0]
    P1(w)       = (max(N1+(. w) - D1, 0) + D1 * N1+(. .) types / V) / N1+(. .)

Every text is [BOS] w1 ... wn; its events are (BOS BOS -> w1), (BOS w1 -> w2), ..., (w(n-1) wn -> BOS),
the same next-token targets as the LSTM's training stream (where [BOS] also ends a text). Counting
is numpy over int64 keys (u * V + v) * V + w: 17M tokens in seconds, no Python loop over tokens.

Top-k needs no pass over the whole vocabulary: outside the words seen after (u, v), P3 is a constant
times P2(. | v), so the best are among those words and the k best under P2 (cached per v); and the
k best under P2 are among the words seen after v and the k best under P1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from nlp_lstm.nextword.metrics import TOP_K, NextWordMetrics


def _discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2) (Ney et al. 1994) from counts of counts; 0.5 when undefined."""
    n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
    return n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[keys == query] for each query (keys sorted), 0 where absent."""
    index = np.minimum(np.searchsorted(keys, queries), max(len(keys) - 1, 0))
    if len(keys) == 0:
        return np.zeros(queries.shape, np.float64)
    return np.where(keys[index] == queries, values[index], 0).astype(np.float64)


class KneserNeyTrigram:
    """Interpolated Kneser-Ney trigram over token ids 0..vocab_size-1.

    Args:
        vocab_size: Size of the vocabulary (the model's, [UNK] included).
        banned_ids: Ids never among the top-k predictions ('', [UNK], [BOS]).
        boundary_id: The [BOS] id (2 in the next-word vocabularies).

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.kn_trigram import KneserNeyTrigram
    >>> texts = [np.array([2, 3, 4, 5]), np.array([2, 3, 4, 6]), np.array([2, 3, 4, 5])]
    >>> kn = KneserNeyTrigram(8, banned_ids=[0, 1, 2]).fit(texts)
    >>> probs = kn.probabilities(np.full(8, 3), np.full(8, 4), np.arange(8))
    >>> round(float(probs.sum()), 6), int(np.argmax(probs))
    (1.0, 5)
    >>> kn.top_k(3, 4, 2).tolist()
    [5, 6]
    """

    name = "interpolated Kneser-Ney trigram"

    def __init__(self, vocab_size: int, banned_ids: Sequence[int] = (), boundary_id: int = 2):
        self.vocab_size = int(vocab_size)
        self.banned = np.zeros(self.vocab_size, bool)
        self.banned[np.asarray(banned_ids, np.int64)] = True
        self.boundary_id = boundary_id

    def _events(self, sequences: Iterable[np.ndarray], with_end: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, w) arrays of every event of the texts ([BOS] first in each)."""
        us, vs, ws = [], [], []
        for sequence in sequences:
            tokens = np.concatenate([[self.boundary_id], sequence, [self.boundary_id] if with_end else []])
            tokens = tokens.astype(np.int64)
            us.append(tokens[:-2])
            vs.append(tokens[1:-1])
            ws.append(tokens[2:])
        empty = np.zeros(0, np.int64)
        return (np.concatenate(us or [empty]), np.concatenate(vs or [empty]), np.concatenate(ws or [empty]))

    def fit(self, sequences: Iterable[np.ndarray]) -> KneserNeyTrigram:
        """Counts the events of token sequences, each starting with [BOS]; returns self."""
        V = self.vocab_size
        u, v, w = self._events(sequences, with_end=True)
        self.tokens = len(w)
        self.keys3, counts3 = np.unique((u * V + v) * V + w, return_counts=True)  # c(u v w)
        self.counts3 = counts3.astype(np.float64)
        self.contexts3, first = np.unique(self.keys3 // V, return_index=True)  # (u, v) seen as context
        self.context_totals3 = np.add.reduceat(self.counts3, first) if len(first) else np.zeros(0)  # c(u v .)
        self.context_types3 = np.diff(np.append(first, len(self.keys3))).astype(np.float64)  # N1+(u v .)
        # Continuation counts: in how many distinct contexts a (v, w) pair, then a word, was seen.
        self.keys2, counts2 = np.unique(self.keys3 % (V * V), return_counts=True)  # N1+(. v w)
        self.counts2 = counts2.astype(np.float64)
        v2 = self.keys2 // V
        self.context_totals2 = np.bincount(v2, weights=self.counts2, minlength=V)  # N1+(. v .)
        self.context_types2 = np.bincount(v2, minlength=V).astype(np.float64)  # N1+(v .)
        counts1 = np.bincount(self.keys2 % V, minlength=V).astype(np.float64)  # N1+(. w)
        self.d3, self.d2, self.d1 = _discount(counts3), _discount(counts2), _discount(counts1[counts1 > 0])
        total1 = max(counts1.sum(), 1.0)
        self.p1 = (np.maximum(counts1 - self.d1, 0) + self.d1 * np.sum(counts1 > 0) / V) / total1  # (V,)
        self.p1 /= self.p1.sum()  # already 1 up to rounding; exactly 1 when no word was seen
        allowed = np.flatnonzero(~self.banned)
        self.best_unigrams = allowed[np.lexsort((allowed, -self.p1[allowed]))[:TOP_K]]
        self._bigram_cache: dict[tuple[int, int], np.ndarray] = {}
        return self

    def probabilities(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P(w | u v) for arrays of equal shape."""
        V = self.vocab_size
        u, v, w = (np.asarray(a, np.int64) for a in (u, v, w))
        p1 = self.p1[w]
        total2, types2 = self.context_totals2[v], self.context_types2[v]
        n2 = _lookup(self.keys2, self.counts2, v * V + w)
        p2 = np.where(total2 > 0, (np.maximum(n2 - self.d2, 0) + self.d2 * types2 * p1) / np.maximum(total2, 1), p1)
        context = u * V + v
        index = np.minimum(np.searchsorted(self.contexts3, context), max(len(self.contexts3) - 1, 0))
        seen = (self.contexts3[index] == context) if len(self.contexts3) else np.zeros(context.shape, bool)
        total3 = np.where(seen, self.context_totals3[index], 0.0) if len(self.contexts3) else np.zeros(context.shape)
        types3 = np.where(seen, self.context_types3[index], 0.0) if len(self.contexts3) else np.zeros(context.shape)
        c3 = _lookup(self.keys3, self.counts3, context * V + w)
        return np.where(total3 > 0, (np.maximum(c3 - self.d3, 0) + self.d3 * types3 * p2) / np.maximum(total3, 1), p2)

    def _best(self, candidates: np.ndarray, u: int, v: int, k: int) -> np.ndarray:
        """The k likeliest of `candidates` after (u, v), best first (ties: lower id first)."""
        candidates = np.unique(candidates)
        candidates = candidates[~self.banned[candidates]]
        probs = self.probabilities(np.full(candidates.shape, u), np.full(candidates.shape, v), candidates)
        return candidates[np.lexsort((candidates, -probs))[:k]]

    def _top_k_after(self, v: int, k: int) -> np.ndarray:
        """The k likeliest allowed tokens under P2(. | v) (cached per v): words seen after v, or the k best by P1."""
        if (v, k) not in self._bigram_cache:
            V = self.vocab_size
            lo2, hi2 = np.searchsorted(self.keys2, [v * V, v * V + V])
            candidates = np.concatenate([self.keys2[lo2:hi2] % V, self.best_unigrams[:k]])
            # P2 alone (u is a context never seen: P3 falls back to P2)
            self._bigram_cache[(v, k)] = self._best(candidates, -1, v, k)
        return self._bigram_cache[(v, k)]

    def top_k(self, u: int, v: int, k: int = TOP_K) -> np.ndarray:
        """The k likeliest allowed next tokens after (u, v), best first.

        Outside the words seen after (u, v), P3 is a constant times P2(. | v), so the answer is among
        those words and the k best under P2; likewise P2 against P1 one order down.
        """
        V = self.vocab_size
        context = u * V + v
        lo3, hi3 = np.searchsorted(self.keys3, [context * V, context * V + V])
        return self._best(np.concatenate([self.keys3[lo3:hi3] % V, self._top_k_after(v, k)]), u, v, k)

    def score(self, sequences: Sequence[np.ndarray]) -> NextWordMetrics:
        """Perplexity and top-k of the words of token sequences ([BOS] first; the end is not scored)."""
        u, v, w = self._events(sequences, with_end=False)
        metrics = NextWordMetrics()
        if len(w) == 0:
            return metrics
        log_probs = np.log(self.probabilities(u, v, w))
        cache: dict[tuple[int, int], np.ndarray] = {}
        top = np.zeros((len(w), TOP_K), np.int64) - 1
        for i, key in enumerate(zip(u.tolist(), v.tolist())):
            if key not in cache:
                cache[key] = self.top_k(*key)
            found = cache[key]
            top[i, : len(found)] = found
        metrics.update(w, log_probs, top)
        return metrics
