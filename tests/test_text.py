"""Tests of nlp_lstm.text: standardize, the vocabulary and both tf.data pipelines, on tiny data."""

from __future__ import annotations

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlp_lstm import text
from nlp_lstm.data import load_imdb
from nlp_lstm.data_config import DataConfig
from nlp_lstm.text import (
    BOUNDARY_TOKEN,
    OOV_ID,
    VectorizerConfig,
    build_vectorizer,
    load_vocabulary,
    make_classification_dataset,
    make_language_model_dataset,
    make_language_model_streams,
    save_vocabulary,
    standardize,
    vectorizer_from_vocabulary,
)

TRAIN_TEXTS = [
    "A good film.<br /><br />A GOOD cast!",
    "A bad film; a bad, bad plot.",
    "Good acting, bad script: 7/10",
    "Café scenes... très bien 😀",
    "It's not the film's fault, it's 'the' editing",
]


def clean(raw: str | bytes) -> str:
    return standardize(tf.constant(raw)).numpy().decode("utf-8")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Great.<br />Really<br/>GREAT<br>film", "great really great film"),
        ("<i>Italics</i> and <a href='x'>a link</a>", "italics and a link"),
        ("Hello, World!!! (2006) -- 7/10 #1", "hello world 2006 7 10 1"),
        ("Don't say 'never'; the actors' work", "don't say never the actors work"),
        ("'Raiders', 'Alien' 'X' and ''", "raiders alien x and"),
        ("rock'n'roll ''tis", "rock'n'roll tis"),
        ("ÉCOLE Straße Ñandú", "école straße ñandú"),
        ("日本語 の 映画 हिन्दी", "日本語 の 映画 हिन्दी"),
        ("loved it \U0001f600\U0001f44d!", "loved it"),
        ("  tabs\tand\nnew\r\nlines  ", "tabs and new lines"),
        ("it\u2019s fine", "it's fine"),
        ("Tom &amp; Jerry", "tom jerry"),
        ("", ""),
        ("?!... 😀", ""),
    ],
)
def test_standardize(raw, expected):
    assert clean(raw) == expected


def test_standardize_keeps_shape_and_survives_bytes_that_are_not_utf8():
    batch = tf.constant([[b"Caf\xe9 ok"], [b"A<br />B"]])  # (2, 1)
    out = standardize(batch)
    assert out.shape == (2, 1)
    assert out.numpy()[:, 0].tolist() == [b"caf ok", b"a b"]


def train_ds(texts=TRAIN_TEXTS) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((texts, np.arange(len(texts)) % 2))


def test_build_vectorizer_counts_training_text_only():
    vectorizer = build_vectorizer(train_ds(), VectorizerConfig(max_tokens=50))
    vocabulary = vectorizer.get_vocabulary()
    assert vocabulary[:2] == ["", "[UNK]"]
    assert vocabulary[2:5] == ["bad", "a", "good"]  # by falling count: bad 4, a 4, good 3 ...
    assert "café" in vocabulary and "it's" in vocabulary and "7" in vocabulary
    assert vectorizer(["superb good"]).numpy().tolist() == [[OOV_ID, vocabulary.index("good")]]


def test_reserved_tokens_follow_unk_and_max_tokens_holds():
    config = VectorizerConfig(max_tokens=6, reserved_tokens=(BOUNDARY_TOKEN,))
    vocabulary = build_vectorizer(train_ds(), config).get_vocabulary()
    assert vocabulary == ["", "[UNK]", BOUNDARY_TOKEN, "bad", "a", "good"]


def test_vocabulary_round_trip_gives_the_same_vectorizer(tmp_path):
    config = VectorizerConfig(max_tokens=30, reserved_tokens=(BOUNDARY_TOKEN,))
    vectorizer = build_vectorizer(train_ds(), config)
    path = tmp_path / "model" / "vocabulary.txt"
    save_vocabulary(vectorizer, path)
    save_vocabulary(vectorizer, path)  # overwriting is fine
    assert [p.name for p in path.parent.iterdir()] == ["vocabulary.txt"]  # no temp file left
    vocabulary = load_vocabulary(path)
    assert vocabulary == vectorizer.get_vocabulary()
    rebuilt = vectorizer_from_vocabulary(vocabulary, config)
    probe = ["A good café film, it's 'bad'!", "", "unseen words only", "<br />GOOD"]
    np.testing.assert_array_equal(vectorizer(probe).numpy(), rebuilt(probe).numpy())


def test_bad_vocabulary_files_are_refused(tmp_path):
    path = tmp_path / "vocabulary.txt"
    path.write_text("film\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must start with"):
        load_vocabulary(path)
    with pytest.raises(ValueError, match="line break"):
        save_vocabulary(["", "[UNK]", "two\nlines"], path)
    assert path.read_text(encoding="utf-8") == "film\n"  # a refused save leaves the file as it was


def test_vectorizer_inside_a_saved_model_loads_back(tmp_path):
    vectorizer = build_vectorizer(train_ds(), VectorizerConfig(max_tokens=30))
    inputs = keras.Input(shape=(1,), dtype="string")
    ids = vectorizer(inputs)  # (batch, time)
    embedded = keras.layers.Embedding(30, 4, mask_zero=True)(ids)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(embedded))
    model = keras.Model(inputs, outputs)
    probe = tf.constant([["A good film!"], ["Bad<br />bad plot"], [""]])
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True: `standardize` must be registered
    layer = next(lyr for lyr in loaded.layers if isinstance(lyr, keras.layers.TextVectorization))
    assert layer._standardize is standardize
    np.testing.assert_allclose(loaded.predict(probe, verbose=0), model.predict(probe, verbose=0))


def classification_batches(texts, labels, max_length, batch_size=2, **kwargs):
    vectorizer = build_vectorizer(tf.data.Dataset.from_tensor_slices(texts), VectorizerConfig())
    ds = tf.data.Dataset.from_tensor_slices((texts, labels))
    return vectorizer, make_classification_dataset(
        ds, vectorizer, batch_size=batch_size, max_length=max_length, **kwargs
    )


def test_bucketed_batches_pad_at_the_end_only_and_respect_max_length():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    lengths = list(range(0, 40)) * 2
    texts = [" ".join(rng.choice(words, n)) for n in lengths]
    labels = np.arange(len(texts)) % 2
    vectorizer, batches = classification_batches(
        texts, labels, max_length=24, batch_size=4, shuffle=True, seed=1, bucket_boundaries=[8, 16]
    )
    seen = 0
    for ids, batch_labels in batches:
        ids = ids.numpy()  # (batch, time)
        assert ids.shape[0] <= 4 and ids.shape[1] <= 24
        nonzero = ids != 0
        lengths_in_batch = nonzero.sum(axis=1)
        assert (lengths_in_batch >= 1).all()  # empty reviews became one [UNK]
        # Padding only at the end: every row is `length` real ids, then zeros.
        assert (nonzero == (np.arange(ids.shape[1]) < lengths_in_batch[:, None])).all()
        # One bucket per batch: [1, 8), [8, 16) or [16, 24].
        assert len({np.searchsorted([8, 16], n, side="right") for n in lengths_in_batch}) == 1
        seen += len(batch_labels)
    assert seen == len(texts)


def test_fixed_widths_pad_each_bucket_to_its_edge_and_keep_the_same_reviews():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    texts = [" ".join(rng.choice(words, n)) for n in list(range(0, 40)) * 2]
    labels = np.arange(len(texts)) % 2

    def rows(fixed_widths):
        _, batches = classification_batches(texts, labels, max_length=24, batch_size=4, shuffle=False, seed=1,
                                            bucket_boundaries=[8, 16], fixed_widths=fixed_widths)  # fmt: skip
        widths, found = set(), []
        for ids, _ in batches:
            widths.add(ids.shape[1])
            found += [tuple(row[row != 0]) for row in ids.numpy()]
        return widths, sorted(found)

    fixed, free = rows(True), rows(False)
    assert fixed[0] == {7, 15, 24}  # [1, 8) -> 7, [8, 16) -> 15, [16, 25) -> 24: one shape per bucket
    assert len(free[0]) > 3
    assert fixed[1] == free[1]  # the same reviews, only padded differently


def test_classification_pipeline_is_reproducible_and_reshuffles():
    texts = [f"review number {i} " + "word " * (i % 7) for i in range(40)]
    labels = np.arange(40) % 2

    def epoch_orders(seed):
        _, batches = classification_batches(texts, labels, 8, 5, shuffle=True, seed=seed)
        first = [ids.numpy().tolist() for ids, _ in batches]
        second = [ids.numpy().tolist() for ids, _ in batches]
        return first, second

    first, second = epoch_orders(3)
    assert epoch_orders(3) == (first, second)
    assert first != second  # a new order every epoch


def test_empty_review_gives_one_unk_and_no_nan_downstream():
    _, batches = classification_batches(["good film", "", "?!"], [1, 0, 0], 5, 3, shuffle=False, seed=0, bucket=False)
    ids, _ = next(iter(batches))
    assert ids.numpy()[:, 0].tolist().count(OOV_ID) == 2
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)
    pooled = keras.layers.GlobalAveragePooling1D()(embedded(ids), mask=embedded.compute_mask(ids))
    assert np.isfinite(pooled.numpy()).all()


def test_unbucketed_classification_batches_from_loaded_imdb(tiny_aclimdb):
    splits = load_imdb(DataConfig(source=str(tiny_aclimdb), val_fraction=0.25, verbose=False))
    vectorizer = build_vectorizer(splits.train, VectorizerConfig(max_tokens=100))
    batches = make_classification_dataset(
        splits.train, vectorizer, batch_size=4, max_length=6, shuffle=True, seed=0, bucket=False
    )
    shapes = [(ids.shape, labels.dtype) for ids, labels in batches]
    assert sum(shape[0] for shape, _ in shapes) == splits.sizes["train"]
    assert all(shape[1] <= 6 and dtype == tf.int64 for shape, dtype in shapes)


def test_language_model_windows_are_the_stream_shifted_by_one():
    texts = ["a b c d", "e f", "", "g h i j k l"]
    config = VectorizerConfig(reserved_tokens=(BOUNDARY_TOKEN,))
    vectorizer = build_vectorizer(tf.data.Dataset.from_tensor_slices(texts), config)
    boundary = vectorizer.get_vocabulary().index(BOUNDARY_TOKEN)
    stream = []
    for review in texts:
        stream += [boundary] + [int(i) for i in vectorizer([review]).numpy()[0] if i != 0]
    window = 3
    batches = make_language_model_dataset(
        tf.data.Dataset.from_tensor_slices(texts), vectorizer, window, 2, seed=0, shuffle=False
    )
    chunks = []
    for inputs, targets in batches:
        inputs, targets = inputs.numpy(), targets.numpy()
        assert inputs.shape == targets.shape == (2, window)
        np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
        chunks += [np.append(row, target[-1]).tolist() for row, target in zip(inputs, targets, strict=True)]
    n_chunks = len(stream) // (window + 1)
    expected = [stream[i * (window + 1) : (i + 1) * (window + 1)] for i in range(n_chunks)]
    assert chunks == expected[: len(chunks)] and len(chunks) == n_chunks // 2 * 2


def test_language_model_shuffle_is_seeded_and_needs_a_boundary_token():
    texts = tf.data.Dataset.from_tensor_slices([f"w{i} w{i + 1} w{i + 2}" for i in range(30)])
    config = VectorizerConfig(reserved_tokens=(BOUNDARY_TOKEN,))
    vectorizer = build_vectorizer(texts, config)

    def first_epoch(seed):
        batches = make_language_model_dataset(texts, vectorizer, 4, 3, seed=seed)
        return [inputs.numpy().tolist() for inputs, _ in batches]

    assert first_epoch(5) == first_epoch(5) != first_epoch(6)
    with pytest.raises(ValueError, match="reserved_tokens"):
        make_language_model_dataset(texts, build_vectorizer(texts, VectorizerConfig()), 4, 3, 0)


def test_language_model_streams_carry_rows_over_and_reshuffle_each_pass():
    texts = [f"w{i} " * (i % 5 + 1) for i in range(23)]  # texts of 1-5 tokens, each of one word
    vectorizer = build_vectorizer(
        tf.data.Dataset.from_tensor_slices(texts), VectorizerConfig(reserved_tokens=(BOUNDARY_TOKEN,))
    )
    boundary = vectorizer.get_vocabulary().index(BOUNDARY_TOKEN)
    reviews = sorted(tuple([boundary] + vectorizer([t]).numpy()[0].tolist()) for t in texts)
    length = len(reviews) + sum(i % 5 + 1 for i in range(23))
    batch, window = 3, 4
    per_row = (length - 1) // (batch * window) * window

    def streams(seed):
        return make_language_model_streams(tf.data.Dataset.from_tensor_slices(texts), vectorizer, window, batch, seed)

    def passes(ds, n):
        batches = iter(ds)
        for _ in range(n):
            rows = [next(batches) for _ in range(per_row // window)]
            inputs = np.concatenate([x.numpy() for x, _ in rows], axis=1)  # (batch, per_row)
            targets = np.concatenate([y.numpy() for _, y in rows], axis=1)
            np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])  # each row goes on
            np.testing.assert_array_equal(inputs[1:, 0], targets[:-1, -1])  # stripes follow each other
            yield np.append(inputs.reshape(-1), targets[-1, -1])  # the pass's stream, less its tail

    first, second = passes(streams(7), 2)
    again = next(passes(streams(7), 1))  # a new dataset with the same seed (a resumed run)
    for stream in (first, second):  # a whole pass: the texts in some order, cut after per_row * batch + 1
        starts = list(np.flatnonzero(stream == boundary)) + [len(stream)]
        whole = [tuple(stream[a:b]) for a, b in zip(starts[:-2], starts[1:-1])]  # the last one may be cut
        assert len(stream) == batch * per_row + 1 and len(set(whole)) == len(whole) and set(whole) <= set(reviews)
    assert not np.array_equal(first, second) and np.array_equal(first, again)  # reshuffled, seeded
    too_short = tf.data.Dataset.from_tensor_slices(texts[:2])  # 5 tokens: no batch of 3 x 4, and no endless wait
    assert len(list(make_language_model_streams(too_short, vectorizer, 4, 3, 0))) == 0


def test_config_is_validated():
    with pytest.raises(ValueError, match="max_tokens"):
        VectorizerConfig(max_tokens=2, reserved_tokens=(BOUNDARY_TOKEN,))
    with pytest.raises(ValueError, match="reserved"):
        VectorizerConfig(reserved_tokens=("[UNK]",))


def test_docstring_examples_run():
    results = doctest.testmod(text)
    assert results.attempted > 10 and results.failed == 0
