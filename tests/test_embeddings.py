"""Word vectors from co-occurrences: counts, PPMI and SVD against direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from nlp_lstm.embeddings import EmbeddingConfig, cooccurrence_counts, ppmi, ppmi_svd_vectors, randomized_svd


def brute_force_counts(rows, vocabulary_size, window, contexts):
    counts = np.zeros((vocabulary_size, contexts))
    for row in rows:
        for i, word in enumerate(row):
            for j, context in enumerate(row):
                distance = abs(i - j)
                if word and context and 0 < distance <= window and context < contexts:
                    counts[word, context] += 1.0 / distance
    return counts


def test_counts_match_a_direct_double_loop():
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 12, size=n) for n in (0, 1, 7, 30, 5)]  # zeros (padding) inside rows too
    counts, n_tokens = cooccurrence_counts(rows, 12, window=3, contexts=9)
    np.testing.assert_allclose(counts, brute_force_counts(rows, 12, 3, 9), rtol=1e-6)
    assert n_tokens == sum(int(np.count_nonzero(row)) for row in rows)


def test_counts_do_not_cross_from_one_text_into_the_next():
    counts, _ = cooccurrence_counts([np.array([2]), np.array([3])], 4, window=5, contexts=4)
    assert counts.sum() == 0


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 4\)"):
        cooccurrence_counts([np.array([1, 4])], 4, window=2, contexts=4)


def test_ppmi_matches_its_definition():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 4, size=(6, 5)).astype("float32")
    smoothing = 0.75
    total = counts.sum()
    context_p = counts.sum(0) ** smoothing / (counts.sum(0) ** smoothing).sum()
    expected = np.zeros_like(counts)
    for w in range(6):
        for c in range(5):
            if counts[w, c]:
                pmi = np.log((counts[w, c] / total) / ((counts[w].sum() / total) * context_p[c]))
                expected[w, c] = max(pmi, 0.0)
    np.testing.assert_allclose(ppmi(counts, smoothing), expected, rtol=1e-5, atol=1e-6)


def test_ppmi_of_no_counts_says_so():
    with pytest.raises(ValueError, match="no co-occurrences"):
        ppmi(np.zeros((3, 3), "float32"))


def test_randomized_svd_finds_the_top_singular_values_and_subspace():
    rng = np.random.default_rng(2)
    matrix = (rng.standard_normal((80, 8)) @ np.diag([20, 15, 10, 8, 6, 4, 3, 2]) @ rng.standard_normal((8, 60)))
    matrix = (matrix + 0.01 * rng.standard_normal((80, 60))).astype("float32")
    u, s = randomized_svd(matrix, 5, seed=3)
    u_exact, s_exact, _ = np.linalg.svd(matrix)
    np.testing.assert_allclose(s, s_exact[:5], rtol=1e-4)
    # Same subspace: projecting the exact vectors onto ours keeps their length.
    np.testing.assert_allclose(np.linalg.norm(u.T @ u_exact[:, :5], axis=0), np.ones(5), atol=1e-4)


def test_words_used_alike_get_vectors_alike():
    # Two topics: ids 2-5 only ever appear among each other, ids 6-9 likewise.
    rng = np.random.default_rng(4)
    rows = [rng.choice([2, 3, 4, 5], 12) for _ in range(50)] + [rng.choice([6, 7, 8, 9], 12) for _ in range(50)]
    vectors = ppmi_svd_vectors(rows, 10, EmbeddingConfig(dim=4, window=2, scale=1.0))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    cosine = unit @ unit.T
    same = [cosine[a, b] for a in range(2, 6) for b in range(2, 6) if a != b]
    across = [cosine[a, b] for a in range(2, 6) for b in range(6, 10)]
    assert min(same) > max(across) + 0.5
    assert not vectors[0].any() and not vectors[1].any()  # padding, and [UNK] never seen
    assert vectors[2:].std() == pytest.approx(1.0, rel=1e-4)  # the scale asked for, over the words seen


def test_vectors_repeat_for_a_seed_and_take_the_asked_scale():
    rng = np.random.default_rng(5)
    rows = [rng.integers(1, 40, size=30) for _ in range(40)]
    config = EmbeddingConfig(dim=6, window=3, scale=0.05, seed=9)
    first, second = ppmi_svd_vectors(rows, 40, config), ppmi_svd_vectors(rows, 40, config)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (40, 6)
    assert first[1:].std() == pytest.approx(0.05, rel=1e-4)  # every id 1-39 occurs


@pytest.mark.parametrize("field, value", [("dim", 0), ("window", 0), ("contexts", 0), ("smoothing", 0.0),
                                          ("smoothing", 1.5), ("scale", 0.0)])
def test_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        EmbeddingConfig(**{field: value})
