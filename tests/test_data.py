"""Tests of nlp_lstm.data on a tiny aclImdb made by the fixtures (conftest.py); no network."""

from __future__ import annotations

import doctest
import http.server
import os
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from nlp_lstm import data
from nlp_lstm.data import ImdbSplits, load_imdb, read_aclimdb
from nlp_lstm.data_config import DataConfig, DataError, read_text_files


def as_pairs(ds: tf.data.Dataset) -> list[tuple[str, int]]:
    return [(text.decode("utf-8"), int(label)) for text, label in ds.as_numpy_iterator()]


def quiet(**kwargs) -> DataConfig:
    return DataConfig(verbose=False, **kwargs)


def test_folder_and_archive_give_the_same_splits(tiny_aclimdb, tiny_aclimdb_tar):
    from_folder = load_imdb(quiet(source=str(tiny_aclimdb), val_fraction=0.25))
    from_archive = load_imdb(quiet(source=str(tiny_aclimdb_tar), val_fraction=0.25))
    for name in ("train", "val", "test", "unsup"):
        assert as_pairs(getattr(from_folder, name)) == as_pairs(getattr(from_archive, name)), name
    assert from_folder.sizes == from_archive.sizes == {"train": 6, "val": 2, "test": 4, "unsup": 3}
    assert from_folder.n_replaced == from_archive.n_replaced == 1


def test_element_spec_is_string_text_and_int64_label(tiny_aclimdb):
    splits = load_imdb(quiet(source=str(tiny_aclimdb)))
    assert splits.train.element_spec == (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([], tf.int64),
    )


def test_labels_follow_the_folder_not_the_listing_order(tiny_aclimdb, tiny_labels, monkeypatch):
    def labelled(splits: ImdbSplits) -> dict[str, int]:
        return dict(as_pairs(splits.train) + as_pairs(splits.val) + as_pairs(splits.test) + as_pairs(splits.unsup))

    config = quiet(source=str(tiny_aclimdb), val_fraction=0.25)
    expected = load_imdb(config)
    assert labelled(expected) == tiny_labels
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: sorted(listdir(path), reverse=True))
    reversed_listing = load_imdb(config)
    for name in ("train", "val", "test", "unsup"):
        assert as_pairs(getattr(reversed_listing, name)) == as_pairs(getattr(expected, name))


def test_non_utf8_and_empty_reviews_are_read(tiny_aclimdb):
    reviews, n_replaced = read_aclimdb(tiny_aclimdb, verbose=False)
    assert n_replaced == 1
    assert any("\ufffd" in text for text in reviews["train"].texts)
    assert "" in reviews["train"].texts


def test_parent_folder_and_progress_lines(tiny_aclimdb, capsys):
    reviews, _ = read_aclimdb(tiny_aclimdb.parent, include_unsup=False)
    assert sorted(reviews) == ["test", "train"]
    assert "1 with bytes that are not UTF-8" in capsys.readouterr().err


def test_validation_split_is_seeded_stratified_and_disjoint(tiny_aclimdb, tiny_labels):
    def pairs(seed: int) -> tuple[list, list]:
        splits = load_imdb(quiet(source=str(tiny_aclimdb), val_fraction=0.5, seed=seed, include_unsup=False))
        return as_pairs(splits.train), as_pairs(splits.val)

    train, val = pairs(1)
    assert pairs(1) == (train, val)
    assert any(pairs(seed)[1] != val for seed in range(2, 12))
    assert sorted(label for _, label in val) == [0, 0, 1, 1]
    assert {text for text, _ in train}.isdisjoint(text for text, _ in val)
    assert len(train) + len(val) == sum(label >= 0 for label in tiny_labels.values()) - 4  # minus test


def test_limit_caps_every_split(tiny_aclimdb):
    splits = load_imdb(quiet(source=str(tiny_aclimdb), limit=2, val_fraction=0.5))
    assert splits.sizes == {"train": 1, "val": 1, "test": 2, "unsup": 2}


def test_include_unsup_false_needs_no_unsup_folder(tmp_path, aclimdb_writer, tiny_files):
    files = {k: v for k, v in tiny_files.items() if not k.startswith("train/unsup")}
    root = aclimdb_writer(tmp_path, files)
    splits = load_imdb(quiet(source=str(root), include_unsup=False))
    assert splits.unsup is None and "unsup" not in splits.sizes
    with pytest.raises(DataError, match="train/unsup"):
        load_imdb(quiet(source=str(root)))
    with pytest.raises(ValueError, match="include_unsup"):
        splits.texts("unsup")


def test_texts_concatenates_splits(tiny_aclimdb):
    splits = load_imdb(quiet(source=str(tiny_aclimdb)))
    texts = list(splits.texts("train", "unsup").as_numpy_iterator())
    assert len(texts) == splits.sizes["train"] + splits.sizes["unsup"]
    with pytest.raises(ValueError, match="unknown split"):
        splits.texts("dev")


def test_missing_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist.*--data"):
        load_imdb(quiet(source=str(tmp_path / "nowhere")))


def test_truncated_or_corrupt_archive_is_a_data_error(tiny_aclimdb_tar, tmp_path):
    raw = tiny_aclimdb_tar.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    # Every cut: some end inside a review, some between two, some in the gzip trailer only.
    for cut in range(len(raw)):
        broken.write_bytes(raw[:cut])
        with pytest.raises(DataError, match="corrupt or truncated"):
            read_aclimdb(broken, verbose=False)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    broken.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_imdb(quiet(source=str(broken)))


def test_file_that_is_not_an_archive_is_a_data_error(tmp_path):
    path = tmp_path / "reviews.tar.gz"
    path.write_bytes(b"this is not a tar archive at all" * 20)
    with pytest.raises(DataError, match="not a readable tar archive"):
        load_imdb(quiet(source=str(path)))


def test_folder_without_the_layout_names_what_is_missing(tmp_path, aclimdb_writer, tiny_files):
    root = aclimdb_writer(tmp_path, {k: v for k, v in tiny_files.items() if not k.startswith("test/pos")})
    with pytest.raises(DataError, match="missing or empty test/pos.*Expected the subfolders train/neg"):
        load_imdb(quiet(source=str(root)))


def test_archive_without_the_layout_names_what_is_missing(tmp_path, aclimdb_writer, tar_gz_writer):
    root = aclimdb_writer(tmp_path, {"reviews/a.txt": b"fine", "reviews/b.txt": b"bad"})
    archive = tar_gz_writer(root, tmp_path / "other.tar.gz")
    with pytest.raises(DataError, match="aclImdb layout.*test/neg, test/pos, train/neg, train/pos"):
        load_imdb(quiet(source=str(archive)))


def test_tfds_source_through_mock_data(monkeypatch):
    # mock_data leaves the data set unprepared, so the loader would probe the network first.
    monkeypatch.setattr(data, "_download_host_reachable", lambda url, timeout_s: True)
    with tfds.testing.mock_data(num_examples=10):
        splits = load_imdb(quiet(val_fraction=0.2, seed=3))
    assert splits.sizes["train"] + splits.sizes["val"] == 10
    assert splits.sizes["test"] == splits.sizes["unsup"] == 10
    assert splits.train.element_spec[1].dtype == tf.int64
    labels = {label for _, label in as_pairs(splits.train) + as_pairs(splits.val) + as_pairs(splits.test)}
    assert labels <= {0, 1}
    assert {label for _, label in as_pairs(splits.unsup)} == {-1}


def test_tfds_without_network_or_local_copy_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_download_host_reachable", lambda url, timeout_s: False)
    start = time.perf_counter()
    with pytest.raises(DataError, match="--data PATH"):
        load_imdb(quiet(tfds_data_dir=str(tmp_path)))
    assert time.perf_counter() - start < 10


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(200 if self.path == "/aclImdb_v1.tar.gz" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_reachability_probe_gives_up_within_its_timeout(monkeypatch):
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert data._download_host_reachable(f"{base}/aclImdb_v1.tar.gz", 2.0)
        start = time.perf_counter()
        assert not data._download_host_reachable(f"{base}/elsewhere", 0.5)  # a portal's 404
        assert not data._download_host_reachable(f"http://127.0.0.1:{silent.getsockname()[1]}/x", 0.5)
        assert not data._download_host_reachable("http://imdb.invalid/aclImdb_v1.tar.gz", 0.5)  # RFC 2606
        assert time.perf_counter() - start < 5
    finally:
        server.shutdown()
        silent.close()


def test_read_text_files(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("Déjà vu.\n", encoding="utf-8")
    bad.write_bytes(b"ok \xff\xfe then ok")
    assert read_text_files([good, bad]) == (["Déjà vu.\n", "ok \ufffd\ufffd then ok"], 1)
    with pytest.raises(DataError, match="does not exist"):
        read_text_files([good, tmp_path / "missing.txt"])
    with pytest.raises(DataError, match="is not a file"):
        read_text_files([tmp_path])


def test_config_is_validated():
    with pytest.raises(ValueError, match="val_fraction"):
        DataConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="limit"):
        DataConfig(limit=0)


def test_docstring_examples_run(tiny_aclimdb, monkeypatch):
    monkeypatch.setattr(data, "_download_host_reachable", lambda url, timeout_s: True)
    with tfds.testing.mock_data(num_examples=4):
        results = doctest.testmod(data, extraglobs={"acl_imdb": str(tiny_aclimdb)})
    assert results.attempted > 10 and results.failed == 0


@pytest.mark.slow
def test_real_archive_sizes_and_labels(aclimdb_archive):
    """The real archive, where there is one: `pytest -m slow` (about 10-15 s to read)."""
    splits = load_imdb(DataConfig(source=str(aclimdb_archive)))
    assert splits.sizes == {"train": 22500, "val": 2500, "test": 25000, "unsup": 50000}
    val_labels = [label for _, label in splits.val.batch(5000).as_numpy_iterator()][0]
    assert np.bincount(val_labels).tolist() == [1250, 1250]
