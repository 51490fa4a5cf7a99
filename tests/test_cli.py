"""Tests of the `nlp-lstm` command (nlp_lstm.cli) and the scripts/ wrappers, mostly in-process."""

from __future__ import annotations

import argparse
import doctest
import io
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from sentiment_helpers import tiny_sentiment_model

from nlp_lstm import cli
from nlp_lstm.cli import build_parser, main
from nlp_lstm.cli import common as cli_common
from nlp_lstm.cli import sentiment as cli_sentiment

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["train_sentiment", "evaluate_sentiment", "predict", "export", "bench_sentiment"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return tiny_sentiment_model(tmp_path_factory)


@pytest.fixture
def model_copy(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained[1], tmp_path / "model"))


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def subparsers_of(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_docstring_examples_run():
    for module, least in ((cli, 3), (cli_common, 4)):
        results = doctest.testmod(module)
        assert results.attempted >= least and results.failed == 0, module.__name__


@pytest.mark.parametrize(
    "argv",
    [[], ["train"], ["train", "sentiment"], ["evaluate"], ["evaluate", "sentiment"], ["predict"], ["export"]],
    ids=lambda argv: " ".join(argv) or "nlp-lstm",
)
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nlp-lstm")
    if argv in (["train", "sentiment"], ["evaluate", "sentiment"], ["predict"], ["export"]):
        assert "--dry-run" in out


def test_every_flag_has_a_help_string():
    def check(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{path}: {action.option_strings or action.dest} has no help"
        for name, sub in subparsers_of(parser):
            check(sub, f"{path} {name}")

    check(build_parser(), "nlp-lstm")


def test_train_defaults_are_the_config_defaults():
    from nlp_lstm.data_config import DataConfig
    from nlp_lstm.sentiment.config import SentimentConfig

    args = build_parser().parse_args(["train", "sentiment"])
    data_config, config = cli_sentiment._sentiment_configs(args)
    assert config == SentimentConfig()
    assert data_config == DataConfig()


def test_a_bare_group_prints_its_help_and_fails(capsys):
    status, _, err = run_main(["train"], capsys)
    assert status == 2 and "sentiment" in err and "nextword" in err


def test_train_dry_run_writes_a_model_to_a_temporary_folder(tmp_path, trained, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_main(["train", "sentiment", "--dry-run", "--data", str(trained[0])], capsys)
    assert status == 0, out
    folder = Path(re.search(r"model in (\S+)", out).group(1))
    assert folder.is_dir() and not folder.is_relative_to(tmp_path)
    assert not (tmp_path / "saved_models").exists()  # the default folder is left alone
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["dry_run"] and metrics["epochs"] == 1
    shutil.rmtree(folder)


def test_evaluate_dry_run_prints_metrics_and_confusion_matrix(trained, capsys):
    acl_imdb, model_dir = trained
    status, out, _ = run_main(["evaluate", "sentiment", "--dry-run", "--model", str(model_dir),
                               "--data", str(acl_imdb)], capsys)  # fmt: skip
    assert status == 0
    assert re.search(r"accuracy\s+[01]\.\d{4}", out) and "confusion matrix" in out
    assert re.search(r"test reviews\s+4", out)
    # Without --data: the data the model was trained on, as its config.json says.
    status, again, _ = run_main(["evaluate", "sentiment", "--model", str(model_dir)], capsys)
    assert status == 0 and again == out


def test_predict_prints_one_line_per_text(trained, capsys):
    status, out, err = run_main(["predict", "--model", str(trained[1]), "Loved it!", "", "日本語 \U0001f600"], capsys)
    assert status == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert len(lines) == 3
    label, probability, _ = lines[0]
    assert label in ("neg", "pos") and 0 <= float(probability) <= 1
    # No word the model knows: answered, not labelled.
    assert [line[:2] for line in lines[1:]] == [["none", "-"], ["none", "-"]]
    assert err.startswith("nlp-lstm: note: 2 of 3 text(s) hold no word the model knows") and err.count("\n") == 1


def test_predict_reads_stdin_when_given_no_text(trained, capsys, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(b"A fine film\n\xff\xfe not UTF-8\n\n" + b"long " * 200_000 + b"\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    status, out, _ = run_main(["predict", "--model", str(trained[1])], capsys)
    assert status == 0
    assert len(out.splitlines()) == 4


def test_dry_run_without_a_model_trains_a_tiny_one(trained, capsys, monkeypatch):
    acl_imdb, model_dir = trained
    calls = []
    monkeypatch.setattr(cli_sentiment, "_dry_run_model", lambda data: calls.append(data) or str(model_dir))
    status, out, _ = run_main(["predict", "--dry-run", "--data", str(acl_imdb)], capsys)
    assert status == 0 and calls == [str(acl_imdb)]
    assert len(out.splitlines()) == len(cli_sentiment.DRY_RUN_TEXTS)


def test_export_dry_run_and_export(trained, tmp_path, capsys):
    status, out, _ = run_main(["export", "--dry-run", "--model", str(trained[1])], capsys)
    assert status == 0 and "exported" in out
    shutil.rmtree(Path(out.split(" to ")[-1].strip()).parent)
    status, out, _ = run_main(["export", "--model", str(trained[1]), "--out", str(tmp_path / "exports")], capsys)
    assert status == 0 and (tmp_path / "exports" / "1" / "saved_model.pb").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(trained[1])])
    assert exit_info.value.code == 2 and "--out EXPORT_DIR is required" in capsys.readouterr().err


def test_export_dispatches_a_nextword_folder_to_the_nextword_exporter(tmp_path, capsys, monkeypatch):
    (tmp_path / "config.json").write_text('{"app": "nextword", "nlp_lstm_version": "0.2.0"}')
    calls = []
    fake = types.ModuleType("nlp_lstm.nextword.export")
    fake.export_nextword = lambda model_dir, export_dir: calls.append((model_dir, export_dir)) or Path(export_dir) / "1"
    monkeypatch.setitem(sys.modules, "nlp_lstm.nextword.export", fake)
    status, _, _ = run_main(["export", "--model", str(tmp_path), "--out", str(tmp_path / "e")], capsys)
    assert status == 0 and calls == [(str(tmp_path), str(tmp_path / "e"))]


def test_flag_defaults_are_the_configs_defaults():
    """The parsed defaults of both train commands build the default configs (none is copied by hand)."""
    from nlp_lstm.cli.nextword import _configs
    from nlp_lstm.data_config import CorpusConfig, DataConfig
    from nlp_lstm.nextword.config import NextWordConfig
    from nlp_lstm.sentiment.config import SentimentConfig

    data_config, config = cli_sentiment._sentiment_configs(cli.build_parser().parse_args(["train", "sentiment"]))
    assert config == SentimentConfig() and data_config == DataConfig()
    corpus, config = _configs(cli.build_parser().parse_args(["train", "nextword"]))
    assert config == NextWordConfig() and corpus == CorpusConfig()


def bad_inputs(tmp: Path, acl_imdb: Path, model_dir: Path) -> dict[str, tuple[list[str], str]]:
    """Name -> (argv, part of the expected message), each made in `tmp`."""
    (tmp / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    (tmp / "no_layout" / "train").mkdir(parents=True)
    (tmp / "a_file").write_text("x")
    nextword = tmp / "nextword_model"
    nextword.mkdir()
    (nextword / "config.json").write_text('{"app": "nextword"}')
    corrupt = Path(shutil.copytree(model_dir, tmp / "corrupt"))
    (corrupt / "model.keras").write_bytes(b"garbage")
    out = ["--out", str(tmp / "out")]
    return {
        "missing data": (["train", "sentiment", "--data", str(tmp / "nowhere"), *out], "does not exist"),
        "corrupt archive": (["train", "sentiment", "--data", str(tmp / "broken.tar.gz"), *out], "not a readable tar"),
        "no aclImdb layout": (["train", "sentiment", "--data", str(tmp / "no_layout"), *out], "aclImdb layout"),
        "unwritable out": (["train", "sentiment", "--data", str(acl_imdb), "--out", str(tmp / "a_file" / "m")],
                           "cannot write to the output folder"),
        "not a sentiment model": (["evaluate", "sentiment", "--model", str(nextword), "--data", str(acl_imdb)],
                                  "not a sentiment model"),
        "corrupt model": (["predict", "--model", str(corrupt), "text"], "damaged"),
        "missing model": (["predict", "--model", str(tmp / "nothing"), "text"], "is not a folder"),
        "finished model": (["train", "sentiment", "--data", str(acl_imdb), "--out", str(model_dir)],
                           "already holds a trained model"),
    }  # fmt: skip


def test_bad_inputs_give_one_line_and_exit_2(trained, model_copy, tmp_path, capsys):
    acl_imdb, _ = trained
    before = {p.name: p.read_bytes() for p in model_copy.iterdir() if p.is_file()}
    for name, (argv, message) in bad_inputs(tmp_path, acl_imdb, model_copy).items():
        status, _, err = run_main(argv, capsys)
        assert status == 2, name
        assert err.count("\n") == 1 and err.startswith("nlp-lstm: error: ") and message in err, (name, err)
    # Nothing already saved was lost.
    assert {p.name: p.read_bytes() for p in model_copy.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_thin_and_answer_help(script):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / f"{script}.py"), "--help"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout


def test_console_script_version():
    result = subprocess.run(["nlp-lstm", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().startswith("nlp-lstm ")


def test_bench_script_dry_run(trained, tmp_path, capsys):
    import runpy

    bench = runpy.run_path(str(REPO / "scripts" / "bench_sentiment.py"))
    assert bench["main"](["--data", str(trained[0]), "--dry-run", "--out", str(tmp_path / "bench")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"test accuracy\s+[01]\.\d{4}", out) and "tokens/s" in out


def test_bench_cell_dry_run_names_the_machine_and_judges_every_row(capsys):
    import runpy

    bench = runpy.run_path(str(REPO / "scripts" / "bench_cell.py"))
    assert bench["main"](["--dry-run"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    from nlp_lstm import machine

    assert machine.cpu_model() in header and "oneDNN " in header and "TensorFlow " in header, header
    for shape in ("classifier", "sentiment", "nextword"):
        for xla in ("no", "yes"):
            rows = re.findall(rf"\| {shape} \| [^|]+ \| \d+ \| {xla} \| (keras.layers.LSTM|nlp_lstm.LSTM) \|", out)
            assert rows == ["keras.layers.LSTM", "nlp_lstm.LSTM"], out
    judged = re.findall(r"\| ([\d.]+)x \(([\d.]+)-([\d.]+)\) \| (PASS|FAIL) \|", out)
    assert len(judged) == 12  # training and inference of 6 rows
    for median, low, high, word in judged:
        assert float(low) <= float(median) <= float(high)
        assert word == ("PASS" if float(median) >= 0.95 else "FAIL")
    assert re.search(r"\| [\d.]+x / [\d.]+x \|", out)  # the classifier's bound


def test_bench_cell_xla_only_times_only_the_compiled_models(capsys):
    import runpy

    bench = runpy.run_path(str(REPO / "scripts" / "bench_cell.py"))
    assert bench["main"](["--dry-run", "--xla-only", "--no-floor", "--no-apps", "--variants"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"\| classifier \| 8 \| 4 \| (yes|no) \| ([^|]+?) +\|", out)
    assert rows == [("yes", "keras.layers.LSTM"), ("yes", "nlp_lstm.LSTM"), ("yes", "forced hoisted"),
                    ("yes", "forced cell")], out  # fmt: skip


def test_bench_cell_judges_the_median_ratio_and_divides_the_bound_right():
    import runpy

    bench = runpy.run_path(str(REPO / "scripts" / "bench_cell.py"))
    assert bench["verdict"]([0.90, 0.96, 0.97]) == "PASS" and bench["verdict"]([0.90, 0.94, 0.99]) == "FAIL"
    assert bench["ratio_cell"]([1.2, 0.9, 1.0]) == "1.00x (0.90-1.20)"
    # 100 tokens a batch; keras trains at 50 tok/s (2 s a batch) and infers at 400 (0.25 s); the products
    # alone take 0.5 s (training) and 0.125 s (inference).
    assert bench["bound_text"](100, (0.125, 0.5), dict(train=50.0, infer=400.0)) == "4.00x / 2.00x"
