"""Tests of nlp_lstm.nextword.prompt: the typed context, the commands, pipe mode (a subprocess), the live prompt."""

from __future__ import annotations

import doctest
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nextword_helpers import write_model_folder

from nlp_lstm.nextword import prompt
from nlp_lstm.nextword.generate import BeamSearch, Greedy, TopK
from nlp_lstm.nextword.prompt import (
    PromptConfig,
    PromptError,
    TypedContext,
    load_prompt_model,
    parse_more,
    run_interactive,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("prompt") / "nextword")


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_prompt_model(str(model_dir))


def test_typed_context_follows_typing_edits_and_pastes_like_a_reread(loaded):
    decoder, tokenizer = loaded
    context = TypedContext(decoder, tokenizer)
    rng = np.random.default_rng(0)
    words = [w for w in decoder.vocabulary[3:]] + ["Unknownword", "GREAT!", "7/10"]
    text = ""
    for _ in range(60):
        action = rng.integers(0, 4)
        if action == 0:  # type a word, letter by letter
            for letter in rng.choice(words):
                text += letter
                context.update(text)
            text += " "
        elif action == 1 and text:  # backspace into the text
            text = text[: int(rng.integers(0, len(text)))]
        elif action == 2:  # paste a paragraph
            text += " ".join(rng.choice(words, size=int(rng.integers(2, 30)))) + " "
        else:  # edit an earlier word
            parts = text.split(" ")
            parts[int(rng.integers(0, len(parts)))] = str(rng.choice(words))
            text = " ".join(parts)
        context.update(text)
        complete = text[: prompt._partial_word_start(text)]
        expected = [decoder.boundary_id] + tokenizer.ids(complete)
        assert [decoder.boundary_id] + context.token_ids == expected
        np.testing.assert_allclose(context.logits, decoder.read_prefix(expected), atol=1e-5)


def test_commands_parse_or_say_how_to_type_them():
    assert parse_more("5") == (5, Greedy()) and parse_more("3 topk 4") == (3, TopK(4))
    assert parse_more("2 beam 3") == (2, BeamSearch(3))
    for bad in ("x", "0", "5 topk", "5 nucleus 3", "5 topp 2", "5 greedy 3"):
        with pytest.raises(PromptError):
            parse_more(bad)
    with pytest.raises(ValueError):
        PromptConfig(rule="beam many")


def test_pipe_mode_answers_every_line_without_a_traceback(model_dir):
    lines = [
        "the movie was",
        "",
        "zzzz qqqq xxxx",
        "bad\x1b[31m escape \x00 nul \x07 bell \u200b zero-width",
        " ".join(["the movie was great"] * 2500),  # 10,000 words
        "   ",
    ]
    process = subprocess.run(
        [sys.executable, "-m", "nlp_lstm.cli", "prompt", "--model", str(model_dir), "--json", "--more", "4",
         "--rule", "topk 5", "--seed", "3"],
        input="\n".join(lines).encode("utf-8") + b"\n\xff\xfe not utf-8\n",
        capture_output=True, timeout=120, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    stderr = process.stderr.decode("utf-8", "replace")
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    answers = [json.loads(line) for line in process.stdout.decode("utf-8").splitlines()]
    assert len(answers) == len(lines) + 1
    for answer in answers:
        assert len(answer["suggestions"]) == 3 and len(answer["continuation"].split()) == 4
        assert not {w for w, _ in answer["suggestions"]} & {"", "[UNK]", "[BOS]"}
    assert answers[0]["note"] is None and answers[1]["note"].startswith("empty prompt")
    assert answers[2]["note"].startswith("no word of the prompt")
    assert answers[4]["prompt_words"] == 10_000
    assert answers[5]["note"].startswith("empty prompt")


def test_pipe_mode_text_output_and_seeded_continuations(loaded):
    import io

    decoder, tokenizer = loaded
    outputs = []
    for _ in range(2):
        out = io.StringIO()
        config = PromptConfig(more_words=5, rule="topp 0.9", seed=7)
        prompt.run_pipe(TypedContext(decoder, tokenizer), ["the movie was"], out, config)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("> the movie was\n  next: ") and "  more: " in outputs[0]


def _interactive(context, keys: str, capsys) -> tuple[int, str]:
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(keys)
        status = run_interactive(context, PromptConfig(seed=1))
    return status, capsys.readouterr().out


def test_live_prompt_accepts_a_suggestion_continues_and_leaves_on_ctrl_d_or_ctrl_c(loaded, capsys):
    decoder, tokenizer = loaded
    context = TypedContext(decoder, tokenizer)
    context.update("the ")
    first = context.suggestions(1)[0][0]
    status, out = _interactive(context, "the \t/more 3 topk 2\r\x04", capsys)
    assert status == 0
    assert context.token_ids[:2] == tokenizer.ids(f"the {first}")  # Tab accepted the first suggestion
    continued = [line for line in out.splitlines() if line.startswith("... ")]
    assert len(continued) == 1 and len(continued[0].split()) == 4
    status, out = _interactive(TypedContext(decoder, tokenizer), "/help\r/more nonsense\rthe movie\x03", capsys)
    assert status == 0 and "/more N" in out and "? /more needs a number" in out


def test_bad_model_folder_is_one_line_and_status_2(tmp_path, capsys):
    from nlp_lstm.cli import main

    assert main(["prompt", "--model", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().startswith("nlp-lstm: error:")
    with pytest.raises(SystemExit) as exit_info:  # a bad rule: a usage error, before any model loads
        main(["prompt", "--model", str(tmp_path), "--rule", "beam x"])
    assert exit_info.value.code == 2 and "beam" in capsys.readouterr().err


def test_prompt_script_dry_run(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prompt.py", "--dry-run"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "scripts" / "prompt.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert "next:" in capsys.readouterr().out


def test_bench_prompt_script_dry_run(capsys):
    bench = runpy.run_path(str(REPO / "scripts" / "bench_prompt.py"))
    assert bench["main"](["--dry-run"]) == 0
    assert "re-read" in capsys.readouterr().out


def test_docstring_examples_run(loaded):
    assert doctest.testmod(prompt, extraglobs={"context": TypedContext(*loaded)}).failed == 0
