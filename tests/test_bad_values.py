"""Every value a user passes is checked before TensorFlow loads: exit 2, one line, nothing written.

And what predict does with a text it cannot judge, and how it prints control characters.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tiny_aclimdb

from nlp_lstm.checks import check_seed
from nlp_lstm.cli import build_parser, main
from nlp_lstm.cli.sentiment import shown_text
from nlp_lstm.data_config import CorpusConfig, DataConfig, DataError
from nlp_lstm.distribute import StrategyConfig, StrategyError
from nlp_lstm.nextword.config import (
    NextWordConfig,
    NextWordModelConfig,
    check_corpus_files,
    dry_run_config,
    not_text_reason,
)
from nlp_lstm.sentiment.config import SentimentConfig

REPO = Path(__file__).resolve().parents[1]
TOY_PARAGRAPH = "The movie was great and the acting was great too, with a story that moved me."


def toy_corpus(folder: Path, paragraphs: int = 40, name: str = "corpus.txt") -> Path:
    path = folder / name
    path.write_text("\n\n".join(f"{TOY_PARAGRAPH} Review {i}." for i in range(paragraphs)), encoding="utf-8")
    return path


def four_short_paragraphs(folder: Path) -> Path:
    path = folder / "four.txt"
    path.write_text("The film was good.\n\nI liked it a lot.\n\nThe end was sad.\n\nA fine cast.\n")
    return path


def random_bytes(folder: Path, nul: bool) -> Path:
    data = os.urandom(200_000)
    path = folder / ("random.bin" if nul else "random_no_nul.bin")
    path.write_bytes(data if nul else data.replace(b"\x00", b"\xff"))
    return path


# Flag and value -> part of the message. The flag's type refuses what it can (the message names the flag);
# the config that holds the value refuses the rest.
SENTIMENT_BAD = {
    "--seed -1": "seed must be an integer in [0, 2**32)",
    "--seed 4294967296": "seed must be an integer in [0, 2**32)",
    "--patience -1": "patience must be an integer >= 0",
    "--learning-rate nan": "--learning-rate: must be a finite number > 0, got nan",
    "--learning-rate inf": "--learning-rate: must be a finite number > 0, got inf",
    "--learning-rate 0": "--learning-rate: must be a finite number > 0, got 0",
    "--learning-rate -1": "--learning-rate: must be a finite number > 0, got -1",
    "--ngram-c nan": "--ngram-c: must be a finite number > 0, got nan",
    "--ngram-c inf": "--ngram-c: must be a finite number > 0, got inf",
    "--max-train-minutes 0": "--max-train-minutes: must be a finite number > 0, got 0",
    "--max-train-minutes -1": "--max-train-minutes: must be a finite number > 0, got -1",
    "--max-train-minutes nan": "--max-train-minutes: must be a finite number > 0, got nan",
    "--max-train-minutes inf": "--max-train-minutes: must be a finite number > 0, got inf",
    "--val-fraction 1.5": "--val-fraction: must be in [0, 1)",
    "--val-fraction -0.1": "--val-fraction: must be in [0, 1)",
    "--val-fraction nan": "--val-fraction: must be in [0, 1)",
    "--embedding-dropout nan": "--embedding-dropout: must be in [0, 1)",
    "--head-dropout 1": "--head-dropout: must be in [0, 1)",
    "--epochs 0": "--epochs: must be >= 1",
    "--cluster-timeout nan": "cluster timeout must be a finite number > 0",
    "--cluster-timeout -1": "cluster timeout must be a finite number > 0",
}
NEXTWORD_BAD = {
    "--seed -1": "seed must be an integer in [0, 2**32)",
    "--seed 4294967296": "seed must be an integer in [0, 2**32)",
    "--patience -1": "patience must be an integer >= 0",
    "--learning-rate nan": "--learning-rate: must be a finite number > 0, got nan",
    "--learning-rate inf": "--learning-rate: must be a finite number > 0, got inf",
    "--learning-rate 0": "--learning-rate: must be a finite number > 0, got 0",
    "--learning-rate -1": "--learning-rate: must be a finite number > 0, got -1",
    "--val-fraction 1.5": "val_fraction and test_fraction must be in (0, 1), got 1.5",
    "--val-fraction -0.1": "val_fraction and test_fraction must be in (0, 1), got -0.1",
    "--val-fraction nan": "val_fraction and test_fraction must be in (0, 1), got nan",
    "--val-fraction 0.97": "val_fraction + test_fraction must leave text to train on",
    "--dropout 1.5": "--dropout: must be in [0, 1), got 1.5",
    "--dropout nan": "--dropout: must be in [0, 1), got nan",
    "--dropout -0.1": "--dropout: must be in [0, 1), got -0.1",
    "--num-sampled -1": "num_sampled must be an integer >= 0",
    "--max-train-minutes 0": "--max-train-minutes: must be > 0 or 'none'",
    "--max-train-minutes nan": "--max-train-minutes: must be > 0 or 'none'",
    "--max-train-minutes inf": "--max-train-minutes: must be > 0 or 'none'",
    "--layers 3": "--layers: invalid choice",
    "--window 0": "--window: must be >= 1",
    "--cluster-timeout nan": "cluster timeout must be a finite number > 0",
    "--cluster-timeout inf": "cluster timeout must be a finite number > 0",
}


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """main's exit status (returned or raised) and its stderr."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def assert_one_line_refusal(status: int, err: str, message: str) -> None:
    assert status == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err  # argparse's refusals too: no usage block
    assert err.splitlines()[-1].startswith("nlp-lstm") and message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", SENTIMENT_BAD, ids=list(SENTIMENT_BAD))
@pytest.mark.parametrize("dry_run", [False, True], ids=["full", "dry-run"])
def test_train_sentiment_refuses_a_bad_value(flag, dry_run, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", "sentiment", "--data", str(tmp_path / "unread"), "--out", str(out), *flag.split()]
    status, err = run_main(argv + ["--dry-run"] * dry_run, capsys)
    assert_one_line_refusal(status, err, SENTIMENT_BAD[flag])
    assert not out.exists()


@pytest.mark.parametrize("flag", NEXTWORD_BAD, ids=list(NEXTWORD_BAD))
@pytest.mark.parametrize("dry_run", [False, True], ids=["full", "dry-run"])
def test_train_nextword_refuses_a_bad_value(flag, dry_run, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", "nextword", "--corpus", str(toy_corpus(tmp_path)), "--out", str(out), *flag.split()]
    status, err = run_main(argv + ["--dry-run"] * dry_run, capsys)
    assert_one_line_refusal(status, err, NEXTWORD_BAD[flag])
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "sentiment", "--limit", "0"], "--limit: must be >= 1"),
        (["evaluate", "sentiment", "--batch-size", "-3"], "--batch-size: must be >= 1"),
        (["predict", "--batch-size", "0", "text"], "--batch-size: must be >= 1"),
        (["evaluate", "nextword", "--test-texts", "-1"], "--test-texts: must be >= 0"),
        (["prompt", "--dry-run", "--seed", "-1"], "--seed: must be in 0..4294967295, got -1"),
        (["prompt", "--dry-run", "--top-k", "0"], "--top-k: must be in 1..50, got 0"),
        (["prompt", "--dry-run", "--more", "-1"], "--more: must be in 0..1000, got -1"),
        (["prompt", "--dry-run", "--rule", "temp inf"], "temperature must be finite and > 0"),
        (["prompt", "--dry-run", "--rule", "temp nan"], "temperature must be finite and > 0"),
        (["prompt", "--dry-run", "--rule", "topp 2"], "top-p needs p in (0, 1]"),
        (["export", "--model", "somewhere"], "--out EXPORT_DIR is required"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_other_commands_refuse_a_bad_value(argv, message, capsys):
    status, err = run_main(argv, capsys)
    assert_one_line_refusal(status, err, message)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: random_bytes(folder, nul=True), "is not text: it holds NUL characters"),
        (lambda folder: random_bytes(folder, nul=False), "characters are letters or spaces (text has at least 50%"),
        (
            four_short_paragraphs,
            "too small for a validation split: its 1 validation paragraph(s) (--val-fraction 0.01 of "
            "4 paragraphs) hold 5 tokens, and validation needs at least 33",
        ),
    ],
    ids=["random bytes", "random bytes without NUL", "four short paragraphs"],
)  # fmt: skip
def test_a_corpus_that_cannot_train_is_refused_before_any_work(make, message, tmp_path, capsys):
    out = tmp_path / "out"
    status, err = run_main(["train", "nextword", "--corpus", str(make(tmp_path)), "--out", str(out)], capsys)
    assert_one_line_refusal(status, err, message)
    assert not out.exists()


def test_the_corpus_check_counts_the_windows_training_and_validation_read(tmp_path):
    corpus = CorpusConfig(files=(str(toy_corpus(tmp_path, paragraphs=40)),))
    # 40 paragraphs of 19 tokens (18 words and a boundary): 1 for validation, 37 for training (703 tokens).
    check_corpus_files(corpus, NextWordConfig(window=18, batch_size=16))  # 19 validation tokens hold a window of 19
    with pytest.raises(DataError, match="hold 19 tokens, and validation needs at least 20 .one window: --window 19"):
        check_corpus_files(corpus, NextWordConfig(window=19, batch_size=16))
    check_corpus_files(corpus, NextWordConfig(window=18, batch_size=37))  # 37 x 19 = 703
    with pytest.raises(DataError, match=r"37 training paragraph\(s\) hold 703 tokens, and one batch needs 722"):
        check_corpus_files(corpus, NextWordConfig(window=18, batch_size=38))
    # Carried states read rows of `window` tokens, and one more for the last target.
    check_corpus_files(corpus, NextWordConfig(window=18, batch_size=39, carry_states=True))  # 39 x 18 + 1 = 703
    with pytest.raises(DataError, match="one batch needs 721"):
        check_corpus_files(corpus, NextWordConfig(window=18, batch_size=40, carry_states=True))
    check_corpus_files(CorpusConfig(), NextWordConfig())  # IMDB: nothing to read here
    check_corpus_files(CorpusConfig(files=(str(toy_corpus(tmp_path, 40)),), limit=16), dry_run_config())


@pytest.mark.parametrize(
    "text",
    ["Great<br /><br />FILM, isn't it?! 10/10 \U0001f600 'Café' &amp; more", "don\u2019t 'quoted' words'",
     "Cafe\u0301 na\u0308ive 日本語の映画 فيلم رائع", "snake_case and  spaces\tand\nlines", "", "!!! ??? ..."],
)  # fmt: skip
def test_the_corpus_check_counts_tokens_as_the_vectorizer_does(text):
    from nlp_lstm.nextword.config import _tokens
    from nlp_lstm.text import standardize

    words = standardize(text).numpy().decode().split()
    assert _tokens(text) == 1 + len(words), words


def test_text_is_letters_and_spaces_mostly():
    assert not_text_reason("Un film très réussi.\n\n日本語の映画。") is None
    assert not_text_reason("caf\ufffd cr\ufffdme: Latin-1 bytes in a French review are a few") is None
    assert "NUL" in not_text_reason("text\x00")
    assert "9% of its characters" in not_text_reason("a" + "\ufffd" * 10)
    assert not_text_reason("") is None  # no paragraph: the paragraph count refuses it


CONFIG_ERRORS = [
    (lambda: SentimentConfig(seed=-1), "seed"),
    (lambda: SentimentConfig(seed=True), "seed"),
    (lambda: SentimentConfig(patience=-1), "patience"),
    (lambda: SentimentConfig(clipnorm=math.inf), "clipnorm"),
    (lambda: SentimentConfig(learning_rate=math.nan), "learning_rate"),
    (lambda: SentimentConfig(embedding_dropout=math.nan), "embedding_dropout"),
    (lambda: SentimentConfig(max_train_minutes=math.nan), "max_train_minutes"),
    (lambda: NextWordConfig(seed=2**32), "seed"),
    (lambda: NextWordConfig(patience=-2), "patience"),
    (lambda: NextWordConfig(clipnorm=math.nan), "clipnorm"),
    (lambda: NextWordConfig(learning_rate=-math.inf), "learning_rate"),
    (lambda: NextWordModelConfig(vocab_size=50, dropout=math.nan), "dropout"),
    (lambda: NextWordModelConfig(vocab_size=50, seed=-5), "seed"),
    (lambda: DataConfig(seed=-1), "seed"),
    (lambda: DataConfig(val_fraction=math.nan), "val_fraction"),
    (lambda: DataConfig(network_timeout_s=math.inf), "network_timeout_s"),
    (lambda: CorpusConfig(seed=2**40), "seed"),
    (lambda: CorpusConfig(test_fraction=math.nan), "test_fraction"),
]


@pytest.mark.parametrize("make, field", CONFIG_ERRORS, ids=[field for _, field in CONFIG_ERRORS])
def test_configs_refuse_bad_values_in_python_too(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_edges_that_are_fine():
    check_seed("seed", 0)
    check_seed("seed", 2**32 - 1)
    assert SentimentConfig(patience=0, seed=0, max_train_minutes=0.5).patience == 0
    assert NextWordConfig(patience=None).patience is None
    with pytest.raises(StrategyError, match="finite"):
        StrategyConfig("multiworker", cluster_timeout_s=math.nan)


# Builds the configs of both train commands from argv, as the command line does, in a fresh interpreter.
BUILD_CONFIGS = """
import sys
from nlp_lstm import cli
from nlp_lstm.cli import nextword, sentiment
app, argv = sys.argv[1], sys.argv[2:]
try:
    args = cli.build_parser().parse_args(["train", app, *argv])
    (sentiment._sentiment_configs if app == "sentiment" else nextword._configs)(args)
    print("built", "tensorflow" in sys.modules)
except SystemExit as exit_:
    print("refused", exit_.code, "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize(
    "app, argv, printed",
    [
        ("sentiment", ["--seed", "-1"], "refused 2 False"),
        ("sentiment", ["--learning-rate", "nan", "--dry-run"], "refused 2 False"),
        ("sentiment", ["--seed", "7", "--max-train-minutes", "30"], "built False"),
        ("nextword", ["--patience", "-1"], "refused 2 False"),
        ("nextword", ["--corpus", "CORPUS", "--seed", "7"], "built False"),  # the corpus was read and checked too
        ("nextword", ["--corpus", "CORPUS", "--dry-run", "--learning-rate", "1e-3"], "built False"),
    ],
)
def test_configs_are_built_and_checked_without_tensorflow(app, argv, printed, tmp_path):
    corpus = toy_corpus(tmp_path, paragraphs=400)
    argv = [str(corpus) if arg == "CORPUS" else arg for arg in argv]
    done = subprocess.run([sys.executable, "-c", BUILD_CONFIGS, app, *argv], capture_output=True, text=True,
                          timeout=60, cwd=REPO)  # fmt: skip
    assert done.stdout.strip() == printed, done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "sentiment", "--seed", "-1"],
        ["train", "sentiment", "--patience", "-1", "--dry-run"],
        ["train", "nextword", "--learning-rate", "nan"],
        ["train", "nextword", "--corpus", "FOUR"],
        ["train", "nextword", "--corpus", "RANDOM"],
        ["prompt", "--top-k", "0"],
        ["prompt", "--more", "1001"],
        ["prompt", "--seed", "-1"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_the_command_refuses_in_one_line_without_loading_tensorflow(argv, tmp_path):
    files = {"FOUR": str(four_short_paragraphs(tmp_path)), "RANDOM": str(random_bytes(tmp_path, nul=False))}
    out = tmp_path / "out"
    command = ["nlp-lstm", *[files.get(arg, arg) for arg in argv], *(["--out", str(out)] if "train" in argv else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    # No TensorFlow: no line of its start-up logs, only the refusal.
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("nlp-lstm") and "error: " in done.stderr and "Traceback" not in done.stderr
    if argv[0] == "prompt":  # its flag's own refusal, not another's
        assert f"{argv[-2]}: must be in" in done.stderr, done.stderr
    assert done.stdout == "" and not out.exists()


def test_too_few_reviews_for_validation_is_one_line(tmp_path, capsys):
    acl_imdb = write_tiny_aclimdb(tmp_path)
    status, err = run_main(["train", "sentiment", "--data", str(acl_imdb), "--limit", "1", "--out",
                            str(tmp_path / "out")], capsys)  # fmt: skip
    assert status == 2 and "Traceback" not in err
    # A line of progress ("reading ... 12 reviews"), then the refusal.
    assert err.splitlines()[-1].startswith("nlp-lstm: error: no validation reviews") and err.count("error") == 1
    assert not (tmp_path / "out" / "model.keras").exists()


def test_shown_text_escapes_control_characters_and_shortens():
    assert shown_text("a\x1b[2Jb\x00c\x7fd\x9be") == "a\\x1b[2Jb\\x00c\\x7fd\\x9be"
    assert shown_text(b"caf\xe9\x1b") == "caf\ufffd\\x1b"
    assert shown_text(" many\n\tlines \r\n ") == "many lines"
    long = shown_text("\x00" * 100)
    assert len(long) == 80 and long.endswith("...") and "\x00" not in long
    assert shown_text("日本語 😀") == "日本語 😀"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    from sentiment_helpers import tiny_sentiment_model

    return tiny_sentiment_model(tmp_path_factory)


def test_predict_marks_the_texts_it_cannot_judge(trained):
    from nlp_lstm.sentiment.predict import predict_sentiment

    predictions = predict_sentiment(trained[1], ["", "   ", "中文文本", "نص عربي", "A wonderful film."])
    assert [p.judged for p in predictions] == [False, False, False, False, True]
    assert {p.label for p in predictions[:4]} == {"none"} and all(math.isnan(p.probability) for p in predictions[:4])
    assert predictions[4].label in ("neg", "pos") and 0.0 <= predictions[4].probability <= 1.0


def test_predict_prints_none_and_escapes_control_characters(trained, capsys):
    texts = ["", "中文文本", "A wonderful film.", "a great \x1b[31mred\x1b[0m film", "a great\x00film\x07"]
    capsys.readouterr()
    assert main(["predict", "--model", str(trained[1]), *texts]) == 0
    out, err = capsys.readouterr()
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[:2] for line in lines[:2]] == [["none", "-"], ["none", "-"]]
    assert all(line[0] in ("neg", "pos") and 0 <= float(line[1]) <= 1 for line in lines[2:])
    assert [line[2] for line in lines[3:]] == ["a great \\x1b[31mred\\x1b[0m film", "a great\\x00film\\x07"]
    assert not any(character in out for character in "\x1b\x00\x07")
    assert err == ("nlp-lstm: note: 2 of 5 text(s) hold no word the model knows (empty, or every word out of its "
                   "vocabulary): labelled none, without a probability\n")  # fmt: skip


# ---- every command, every flag: generated from the parser itself, so a new flag is covered when it is added ----

MISSING = "/nonexistent/nlp-lstm-test"
PATH_FLAGS = {"--data", "--model", "--corpus", "--sentiment", "--nextword"}
# (flag, value) pairs that are legal by design: the command then stops at the missing file its base names.
LEGAL = {("--seed", "0"), ("--patience", "0"), ("--ngram-buckets", "0"), ("--embedding-dropout", "0"),
         ("--head-dropout", "0"), ("--dropout", "0"), ("--num-sampled", "0"), ("--test-texts", "0"), ("--more", "0"),
         ("--val-fraction", "0", "train sentiment"), ("--port", "0"), ("--batch-timeout-ms", "0")}  # fmt: skip
# What a refusal calls a flag when it names the config field rather than the flag.
FIELD_NAMES = {
    "--top-k": "k must be",
    "--more": "more_words",
    "--rule": "unknown rule",
    "--cluster-timeout": "timeout",
    "--host": "cannot listen on",
}
# A command's positional arguments, given so that only the flag under test is wrong.
POSITIONAL = {"explain": ["a fine film"]}


def every_command() -> list[tuple[list[str], argparse.ArgumentParser]]:
    commands = []
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in top.choices.items():
        apps = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        commands += [([name, app], sub) for app, sub in apps[0].choices.items()] if apps else [([name], parser)]
    return commands


def bad_value_cases() -> list[tuple[list[str], str, str]]:
    """(command, flag, value): a negative, a zero and a word for each number, an unknown choice, a missing file."""
    cases = []
    for command, parser in every_command():
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.option_strings[-1] == "--out":
                continue
            flag = action.option_strings[-1]
            if flag in PATH_FLAGS:
                values = [MISSING]
            elif action.choices:
                values = ["nope"]
            elif flag == "--host":
                values = ["no-such-host.invalid"]
            else:
                values = ["-1", "0", "abc"]
            cases += [(command, flag, value) for value in values]
    return cases


def test_the_generated_cases_cover_every_command_and_kind():
    cases = bad_value_cases()
    assert {" ".join(c) for c, _, _ in cases} == {"train sentiment", "train nextword", "evaluate sentiment",
                                                  "evaluate nextword", "predict", "explain", "prompt", "export",
                                                  "serve"}  # fmt: skip
    assert {v for _, _, v in cases} >= {MISSING, "nope", "-1", "0", "abc"} and len(cases) > 150


@pytest.mark.parametrize(
    "command, flag, value", bad_value_cases(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_every_command_refuses_every_bad_value_in_one_line(command, flag, value, capsys, tmp_path, monkeypatch):
    """A refusal is one line naming the flag, exit status 2, no traceback; a value
    that is legal by design gets through to the missing file the command was pointed at, told in one line."""
    monkeypatch.chdir(tmp_path)  # the default model folders (saved_models/...) are missing here, whatever the checkout
    name = " ".join(command)
    # Each command is pointed at a missing file, so that a value wrongly accepted meets that, not real work.
    base = {
        "train sentiment": ["--data", MISSING],
        "train nextword": ["--corpus", MISSING],
        "serve": ["--port", "0", "--sentiment", MISSING],
    }.get(name, ["--model", MISSING])
    out = ["--out", str(tmp_path / "export")] if command == ["export"] else []
    if command == ["serve"] and flag in PATH_FLAGS:
        base = ["--port", "0"]  # serve's path flags are its models: the missing one is the flag under test
    elif flag in PATH_FLAGS:
        base = []
    argv = [*command, *base, *out, flag, value, *POSITIONAL.get(name, [])]
    status, err = run_main(argv, capsys)
    last = err.splitlines()[-1] if err else ""
    assert status == 2 and "Traceback" not in err, err
    assert err.count("\n") == 1, err
    assert last.startswith("nlp-lstm"), err
    if value == MISSING:
        assert MISSING in last or "saved_models/" in last  # evaluate/predict --data: the default model is missing
    elif (flag, value) in LEGAL or (flag, value, name) in LEGAL:
        assert MISSING in last, f"{flag} {value} is legal: the command should have reached the missing file"
    else:
        names = {flag, flag.lstrip("-").replace("-", "_"), FIELD_NAMES.get(flag, flag)}
        assert any(n in last for n in names), f"the refusal does not name {flag}: {last}"
