"""Held-out quality of a next-word model: perplexity, top-1 and top-3, beside an n-gram baseline.

    test texts --(the model's vocabulary)--> [BOS] w1 ... wn per text
               --(model: full softmax, state carried across chunks)--> log P(w_i | prefix), top-k ids
               --(NextWordMetrics)--> perplexity over every target; top-k accuracy over non-[UNK] targets

Conventions, the same for the model and the baseline:
- every text starts from the boundary token [BOS] and each of its words is a target (the end of the
  text is not); [UNK] targets count in the perplexity (both models spread probability over the same
  vocabulary, [UNK] included) and are left out of top-k accuracy;
- the top-k candidates are the words the prompt can suggest: '', [UNK] and [BOS] are never among them.

The baseline is an interpolated Kneser-Ney trigram trained on the model's training texts with the
model's vocabulary (`nlp_lstm.nextword.kn_trigram`), counted by the same `NextWordMetrics`
(`nlp_lstm.nextword.metrics`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import tensorflow as tf

from nlp_lstm.files import atomic_write_json
from nlp_lstm.nextword.config import DEFAULT_TEST_TEXTS, EVALUATION_FILE
from nlp_lstm.nextword.corpus import load_corpus
from nlp_lstm.nextword.generate import banned_ids
from nlp_lstm.nextword.metrics import TOP_K, NextWordMetrics
from nlp_lstm.nextword.model import NextWordModel, load_nextword_folder
from nlp_lstm.progress import Progress
from nlp_lstm.text import BOUNDARY_TOKEN, VectorizerConfig, vectorizer_from_vocabulary


def token_sequences(texts: Iterable[str | bytes] | tf.data.Dataset, vocabulary: Sequence[str]) -> list[np.ndarray]:
    """Each text as [BOS] + its token ids (int32), with the model's vocabulary and standardisation.

    Example:

    >>> from nlp_lstm.nextword.evaluate import token_sequences
    >>> [s.tolist() for s in token_sequences(["Good film.", ""], ["", "[UNK]", "[BOS]", "good", "film"])]
    [[2, 3, 4], [2]]
    """
    vectorizer = vectorizer_from_vocabulary(vocabulary, VectorizerConfig(None))
    boundary = list(vocabulary).index(BOUNDARY_TOKEN)
    if isinstance(texts, tf.data.Dataset):
        ds = texts
    else:
        texts = list(texts)
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string, [len(texts)]))
    sequences: list[np.ndarray] = []
    for batch in ds.batch(256):
        ids = vectorizer(batch)
        rows = ids if isinstance(ids, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(ids, padding=0)
        for row in rows.numpy():
            sequences.append(np.concatenate([[boundary], np.asarray(row, np.int32)]).astype(np.int32))
    return sequences


def score_model(
    model: NextWordModel,
    vocabulary: Sequence[str],
    sequences: Sequence[np.ndarray],
    batch_size: int = 16,
    chunk: int = 64,
    verbose: bool = False,
    every_s: float = 30.0,
) -> NextWordMetrics:
    """Evaluates the model on token sequences ([BOS] first), full softmax, the state carried across chunks.

    Sequences of similar length share a batch; padding (id 0) only trails a row, so it never changes
    the predictions of real positions, and its targets are masked out. `verbose` prints to stderr
    how many targets there are, then how many are scored, the rate and the time left: a live bar on
    a terminal, else a line every `every_s` seconds (`nlp_lstm.progress.Progress`).
    """
    ban = np.zeros(len(vocabulary), np.float32)
    ban[banned_ids(vocabulary)] = -np.inf
    ban = tf.constant(ban)
    width, units = model.config.state_width, model.config.units

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None, width, units], tf.float32)])  # fmt: skip
    def score_chunk(ids, targets, states):
        features, states = model.features(ids, states)  # (b, t, units)
        logits = model.logits(features)  # (b, t, vocab)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        target_log_probs = tf.gather(log_probs, targets, batch_dims=2)  # (b, t)
        top_ids = tf.math.top_k(logits + ban, k=TOP_K).indices  # (b, t, k), suggestible words only
        return target_log_probs, top_ids, states

    metrics = NextWordMetrics()
    order = np.argsort([len(s) for s in sequences], kind="stable")
    total = sum(len(s) - 1 for s in sequences)
    if verbose:
        print(f"scoring the model on {len(sequences)} texts ({total:,} targets)", file=sys.stderr)
    progress = Progress("scoring", total, unit="targets", stream=sys.stderr, every_s=every_s)
    for begin in range(0, len(order), batch_size):
        if verbose:
            progress.update(metrics.tokens, f"{begin:,} of {len(order):,} texts")
        rows = [sequences[i] for i in order[begin : begin + batch_size]]
        longest = max(len(r) for r in rows)
        padded = np.zeros((len(rows), longest), np.int32)
        for i, row in enumerate(rows):
            padded[i, : len(row)] = row
        states = np.zeros((len(rows), width, units), np.float32)
        for t in range(0, longest - 1, chunk):
            n = min(chunk, longest - 1 - t)  # inputs t .. t+n-1 predict t+1 .. t+n
            ids, targets = padded[:, t : t + n], padded[:, t + 1 : t + 1 + n]
            target_log_probs, top_ids, states = score_chunk(ids, targets, states)
            real = targets != 0
            metrics.update(targets[real], target_log_probs.numpy()[real], top_ids.numpy()[real])
    progress.clear()
    return metrics


def evaluate_nextword(
    model_dir: str,
    test_texts: int | None = DEFAULT_TEST_TEXTS,
    baseline: type | None = None,
    data: str | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Scores a model folder on its corpus's held-out test texts, and a baseline trained on its training texts.

    Args:
        model_dir: The model folder.
        test_texts: Score the first this many test texts of the seeded order (None: all).
        baseline: A class like `nlp_lstm.nextword.kn_trigram.KneserNeyTrigram` (`(vocab_size, banned_ids)`,
            `.fit(sequences)`, `.score(sequences) -> NextWordMetrics`); None scores the model alone.
        data: Read IMDB from here instead of the path the model was trained from.

    Returns:
        {"model": metrics, "baseline": metrics or None, "ratios": {...}, ...}; also written to
        model_dir/evaluation.json.

    Example (``model_dir``: a folder a tiny training on ``acl_imdb`` wrote):

    >>> from nlp_lstm.nextword.kn_trigram import KneserNeyTrigram
    >>> from nlp_lstm.nextword.evaluate import evaluate_nextword
    >>> result = evaluate_nextword(model_dir, data=acl_imdb, baseline=KneserNeyTrigram, verbose=False)
    >>> result["test_texts"], result["model"]["perplexity"] > 1, result["baseline"]["perplexity"] > 1
    (4, True, True)
    """

    start = time.perf_counter()
    loaded = load_nextword_folder(model_dir)
    corpus_config = loaded.corpus if data is None or loaded.corpus.files else replace(loaded.corpus, data=data)
    corpus = load_corpus(corpus_config, verbose=verbose)
    test_ds = corpus.test if test_texts is None else corpus.test.take(test_texts)
    test = token_sequences(test_ds, loaded.vocabulary)
    model_metrics = score_model(loaded.model, loaded.vocabulary, test, verbose=verbose).result()
    result: dict[str, Any] = {
        "test_texts": len(test),
        "model": model_metrics,
        "baseline": None,
        "ratios": None,
        "corpus": corpus_config.source_name,
    }
    if baseline is not None:
        if verbose:
            print("counting the baseline's trigrams on the training texts", file=sys.stderr)
        train = token_sequences(corpus.train, loaded.vocabulary)
        trigram = baseline(len(loaded.vocabulary), banned_ids(loaded.vocabulary))
        trigram.fit(train)
        if verbose:
            print(f"scoring the baseline (trained on {sum(len(s) for s in train):,} tokens)", file=sys.stderr)
        result["baseline"] = trigram.score(test).result()
        result["baseline"]["name"] = getattr(trigram, "name", baseline.__name__)
        result["baseline"]["train_tokens"] = sum(len(s) for s in train)
        b = result["baseline"]
        result["ratios"] = {
            "perplexity": model_metrics["perplexity"] / b["perplexity"] if b["perplexity"] else None,
            "top1": model_metrics["top1"] / b["top1"] if b["top1"] else None,
            "top3": model_metrics["top3"] / b["top3"] if b["top3"] else None,
        }
        result["targets_met"] = {
            "perplexity <= 0.75x baseline": bool(result["ratios"]["perplexity"] <= 0.75),
            "top3 >= 1.2x baseline": bool(result["ratios"]["top3"] and result["ratios"]["top3"] >= 1.2),
        }
    result["wall_time_s"] = round(time.perf_counter() - start, 3)
    atomic_write_json(loaded.folder / EVALUATION_FILE, result)
    return result


def format_evaluation(result: dict[str, Any]) -> str:
    """A small table of the evaluation: one row per model.

    Example:

    >>> from nlp_lstm.nextword.evaluate import format_evaluation
    >>> print(format_evaluation({"test_texts": 2, "model": {"perplexity": 90.0, "top1": 0.2, "top3": 0.35,
    ...       "tokens": 10}, "baseline": None}))
    test texts: 2 (10 targets)
    model         perplexity   top-1   top-3
    LSTM                90.0   20.0%   35.0%
    """

    def cell(value: float | None, spec: str, width: int) -> str:
        return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{spec}}"

    lines = [f"test texts: {result['test_texts']} ({result['model']['tokens']:,} targets)",
             f"{'model':<12}{'perplexity':>12}{'top-1':>8}{'top-3':>8}"]  # fmt: skip
    rows = [("LSTM", result["model"])]
    if result.get("baseline"):
        rows.append(("KN trigram", result["baseline"]))
    for name, m in rows:
        scores = cell(m["perplexity"], ".1f", 12) + cell(m["top1"], ".1%", 8) + cell(m["top3"], ".1%", 8)
        lines.append(f"{name:<12}{scores}")
    if result.get("ratios"):
        r = result["ratios"]
        lines.append(f"{'LSTM / KN':<12}{cell(r['perplexity'], '.2f', 11)}x{cell(r['top1'], '.2f', 7)}x"
                     f"{cell(r['top3'], '.2f', 7)}x   (targets: perplexity <= 0.75x, top-3 >= 1.2x)")  # fmt: skip
    return "\n".join(lines)
