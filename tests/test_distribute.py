"""tf.distribute: configuration errors, and real runs of MirroredStrategy (2 logical CPUs) and of a
2-worker MultiWorkerMirroredStrategy cluster on 127.0.0.1, against a one-device run as the oracle.

The runs go through the `nlp-lstm` command in subprocesses: a cluster, and a CPU split into
logical devices, can only be set up before TensorFlow starts, which in pytest's process it has.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlp_lstm.cli import main
from nlp_lstm.distribute import StrategyConfig, StrategyError, free_ports, read_tf_config

POSITIVE = "great wonderful superb loved brilliant moving funny smart".split()
NEGATIVE = "awful boring dull worst dreadful stupid predictable loud".split()
FILLER = "the film a movie plot cast acting scenes story director was it and of".split()
# A model small enough to train in seconds; no dropout, so that replicas draw nothing at random and
# one device and two replicas take the same steps.
TRAIN_FLAGS = [
    "--epochs", "2", "--patience", "5", "--batch-size", "16", "--max-tokens", "60", "--max-length", "32",
    "--embedding-dim", "8", "--units", "4", "--embedding-dropout", "0", "--head-dropout", "0",
    "--learning-rate", "0.01", "--val-fraction", "0.25", "--backup-every", "2",
    # A constant rate (the n-gram member is fitted before training in every process): these tests compare
    # strategies.
    "--learning-rate-decay", "none",
]  # fmt: skip


@pytest.fixture(scope="module")
def word_reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An aclImdb folder of 96 train and 32 test reviews whose label shows in their words."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("distribute") / "aclImdb"
    for split, count in (("train", 48), ("test", 16)):
        for label, words, stars in (("pos", POSITIVE, 8), ("neg", NEGATIVE, 2)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for index in range(count):
                length = rng.randint(5, 30)
                text = " ".join(rng.choice(words if rng.random() < 0.3 else FILLER) for _ in range(length))
                (folder / f"{index}_{stars}.txt").write_text(text)
    (root / "train" / "unsup").mkdir()
    for index in range(4):
        (root / "train" / "unsup" / f"{index}_0.txt").write_text(f"an unlabelled review of film {index}")
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra}


def _train(data: Path, out: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "nlp_lstm.cli", "train", "sentiment", "--data", str(data), "--out", str(out),
               *TRAIN_FLAGS, *flags]  # fmt: skip
    return subprocess.Popen(command, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout_s: float = 240) -> str:
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, output[-3000:]
    return output


def _losses(out: Path) -> list[tuple[float, float]]:
    with open(out / "history.csv", newline="") as file:
        return [(float(row["loss"]), float(row["val_loss"])) for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def one_device_run(word_reviews: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one_device") / "model"
    _finish(_train(word_reviews, out))
    return out


@pytest.fixture(scope="module")
def mirrored_run(word_reviews: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mirrored") / "model"
    _finish(_train(word_reviews, out, "--strategy", "mirrored", "--devices", "CPU:0,CPU:1"))
    return out


def test_mirrored_over_two_cpus_follows_the_one_device_loss(one_device_run: Path, mirrored_run: Path) -> None:
    metrics = json.loads((mirrored_run / "metrics.json").read_text())
    assert (metrics["replicas"], metrics["workers"]) == (2, 1)
    one, two = _losses(one_device_run), _losses(mirrored_run)
    assert len(one) == len(two) == 2
    assert two[-1][0] < two[0][0]  # it learns
    # Not bit-equal: a bucket's last, odd-sized batch splits unevenly, and each replica averages its own share.
    for (loss_1, val_1), (loss_2, val_2) in zip(one, two):
        assert loss_2 == pytest.approx(loss_1, abs=0.02)
        assert val_2 == pytest.approx(val_1, abs=0.02)


def test_two_worker_cluster_trains_and_the_chief_saves_a_model(
    word_reviews: Path, mirrored_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    started = time.monotonic()
    processes = [
        _train(word_reviews, out, "--strategy", "multiworker", "--cluster-timeout", "60",
               env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})))
        for index in range(2)
    ]  # fmt: skip
    try:
        outputs = [_finish(process) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert time.monotonic() - started < 120
    assert "done after 2 epoch(s)" in outputs[1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["replicas"], metrics["workers"], metrics["epochs"]) == (2, 2, 2)
    # Two workers of one replica each take the very steps of one process with two replicas.
    flat = [value for epoch in _losses(out) for value in epoch]  # approx() takes flat sequences only
    assert flat == pytest.approx([value for epoch in _losses(mirrored_run) for value in epoch], abs=1e-4)
    # Only the chief wrote the model folder; the worker kept its own corner, and no backup is left.
    worker = out / "workers" / "worker-1"
    assert not (worker / "model.keras").exists() and not (worker / "metrics.json").exists()
    assert not (out / "backup").exists() and not (worker / "backup").exists()
    import keras

    import nlp_lstm.sentiment.model  # noqa: F401  (registers the custom layers)

    model = keras.models.load_model(out / "model.keras")
    assert model.predict(__import__("numpy").ones((2, 5), "int64"), verbose=0).shape == (2, 2)  # BiLSTM, n-gram


def test_a_worker_that_never_comes_gives_up_within_the_timeout(word_reviews: Path, tmp_path: Path) -> None:
    ports = free_ports(2)
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": "worker", "index": 0}}
    started = time.monotonic()
    process = _train(word_reviews, tmp_path / "model", "--strategy", "multiworker", "--cluster-timeout", "5",
                     env=_env(TF_CONFIG=json.dumps(tf_config)))  # fmt: skip
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2  # a user's error, as every refusal; not the 137 of a SIGKILL
    assert time.monotonic() - started < 60
    assert f"did not form within 5 s (no answer from 127.0.0.1:{ports[1]})" in output
    assert not (tmp_path / "model" / "model.keras").exists()


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "needs the cluster in the TF_CONFIG"),
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
        ('{"cluster": {"worker": ["a:1"]}}', 'no "task"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task index 1 is out of range"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief' is not in the cluster"),
        (
            '{"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}',
            "'ps' is not supported",
        ),
        ('{"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}', "is not \"host:port\""),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
    ],
)  # fmt: skip
def test_malformed_tf_config_is_refused_before_any_work(
    tf_config: str | None, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    tmp_path: Path,
) -> None:  # fmt: skip
    with pytest.raises(StrategyError, match=message):
        read_tf_config(tf_config)
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    # The command fails the same way, with one line and status 2, before reading any data.
    status = main(["train", "sentiment", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
                   "--strategy", "multiworker"])  # fmt: skip
    assert status == 2
    assert message.strip("'") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_mirrored_without_devices_or_with_missing_ones_says_what_to_pass(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    base = ["train", "sentiment", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--strategy", "mirrored"]
    assert main(base) == 2  # this machine has no GPU
    assert "found no GPU; name the devices to mirror over with --devices" in capsys.readouterr().err
    assert main([*base, "--devices", "GPU:7"]) == 2
    assert "no device GPU:7 here" in capsys.readouterr().err
    assert main([*base, "--devices", "TPU:0"]) == 2
    assert "cannot read the device 'TPU:0'" in capsys.readouterr().err


def test_strategy_config_checks_its_fields() -> None:
    assert StrategyConfig("mirrored", ("cpu:1", "/device:CPU:0")).devices == ("CPU:1", "CPU:0")
    with pytest.raises(StrategyError, match="unknown strategy 'tpu'"):
        StrategyConfig("tpu")
    with pytest.raises(StrategyError, match="--devices goes with --strategy mirrored"):
        StrategyConfig("multiworker", ("GPU:0",))
    with pytest.raises(StrategyError, match="must be a finite number > 0"):
        StrategyConfig("multiworker", cluster_timeout_s=0)


def test_nextword_on_two_replicas_follows_the_one_device_loss(word_reviews: Path, tmp_path: Path) -> None:
    """The next-word model computes its own loss: it must be divided over the replicas like Keras's
    own losses, and an empty share of a small last batch must not make the validation loss NaN."""
    flags = ["--data", str(word_reviews), "--max-tokens", "60", "--embedding-dim", "8", "--units", "8",
             "--num-sampled", "16", "--window", "8", "--batch-size", "8", "--train-tokens", "2048", "--epochs", "2",
             "--val-fraction", "0.25"]  # fmt: skip
    runs = {}
    for name, extra in (("one", []), ("two", ["--strategy", "mirrored", "--devices", "CPU:0,CPU:1"])):
        out = tmp_path / name
        command = [sys.executable, "-m", "nlp_lstm.cli", "train", "nextword", *flags, "--out", str(out), *extra]
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        runs[name] = _losses(out)
    for (loss_1, val_1), (loss_2, val_2) in zip(runs["one"], runs["two"]):
        assert loss_2 == pytest.approx(loss_1, abs=0.05)  # sampled candidates differ per replica
        assert val_2 == pytest.approx(val_1, abs=0.02)  # the full softmax: no sampling
