"""The Python API at the top of the package: `nlp_lstm.LSTM`, `nlp_lstm.LSTMCell`,
`nlp_lstm.sentiment.load(path).predict(texts)`, `nlp_lstm.nextword.load(path).suggest / .generate`,
and `import nlp_lstm` making `keras.models.load_model` work on what the project saves."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nextword_helpers import write_model_folder
from sentiment_helpers import tiny_sentiment_model

import nlp_lstm
from nlp_lstm.run_folder import ModelFolderError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sentiment_dir(tmp_path_factory) -> Path:
    return tiny_sentiment_model(tmp_path_factory)[1]


@pytest.fixture(scope="module")
def nextword_dir(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("api") / "nextword")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=300)


# What runs before `import keras` and the loads: the orders a user may write, including those where the
# package's own code imports Keras first (the registration then waits for the first load_model).
IMPORT_ORDERS = {
    "nlp_lstm, then keras": "import nlp_lstm",
    "keras, then nlp_lstm": "import keras; import nlp_lstm",
    "the layer first": "import nlp_lstm; nlp_lstm.LSTM",
    "an app module first": "import nlp_lstm; import nlp_lstm.sentiment.predict",
    "a sentiment load first": "import nlp_lstm, sys; nlp_lstm.sentiment.load(sys.argv[1].rsplit('/', 1)[0])",
}


@pytest.mark.parametrize("first", IMPORT_ORDERS.values(), ids=IMPORT_ORDERS.keys())
def test_import_nlp_lstm_makes_keras_load_every_saved_model_in_a_fresh_process(first, sentiment_dir, nextword_dir):
    code = f"""
import sys
{first}
print("tensorflow before keras:", "tensorflow" in sys.modules)
import keras
for path in sys.argv[1:]:
    for load in (keras.models.load_model, keras.saving.load_model):
        model = load(path)
    print(type(model).__name__, [layer.__class__.__module__ for layer in model.layers if "nlp_lstm" in
          layer.__class__.__module__][:1])
"""
    done = run_python(code, str(sentiment_dir / "model.keras"), str(nextword_dir / "model.keras"))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    if first == "import nlp_lstm":
        assert lines[0] == "tensorflow before keras: False"  # importing the package alone loads no TensorFlow
    assert lines[1].startswith("Functional") and "nlp_lstm" in lines[1]
    assert lines[2].startswith("NextWordModel")


def test_without_nlp_lstm_keras_cannot_load_the_model(sentiment_dir):
    """The oracle for the test above: the registration is what makes loading work."""
    done = run_python("import sys, keras; keras.models.load_model(sys.argv[1])", str(sentiment_dir / "model.keras"))
    assert done.returncode != 0 and "nlp_lstm" in done.stderr


def test_the_layer_and_the_cell_are_the_package_classes():
    from nlp_lstm.cell import LSTMCell
    from nlp_lstm.layers import LSTM

    assert nlp_lstm.LSTM is LSTM and nlp_lstm.LSTMCell is LSTMCell
    with pytest.raises(AttributeError):
        nlp_lstm.NoSuchThing  # noqa: B018


def test_sentiment_predict_matches_predict_sentiment(sentiment_dir):
    from nlp_lstm.sentiment.predict import predict_sentiment

    texts = ["A wonderful, moving film.", "Dull and far too long.", "", "日本語のレビュー", b"\xff\xfe bytes"]
    model = nlp_lstm.sentiment.load(sentiment_dir)
    got, expected = model.predict(texts), predict_sentiment(sentiment_dir, texts)
    assert [p.label for p in got] == [p.label for p in expected]
    assert np.allclose([p.probability for p in got], [p.probability for p in expected], equal_nan=True)
    assert got[2].label == "none" and math.isnan(got[2].probability) and not got[2].judged
    assert model.predict(texts[0]) == got[:1]  # a single string is one text, not a list of characters


def test_nextword_suggest_is_the_top_k_of_the_model_read_from_scratch(nextword_dir):
    """Oracle: the decoder reading the whole prefix at once, its banned tokens removed, sorted."""
    from nlp_lstm.nextword.generate import Decoder, WordTokenizer

    model = nlp_lstm.nextword.load(nextword_dir)
    vocabulary = model.folder.vocabulary
    decoder, tokenizer = Decoder(model.folder.model, vocabulary), WordTokenizer(vocabulary)
    for text in ["the movie was", "a film", "the the the movie"]:
        log_probs = decoder.suggestion_log_probs(decoder.read_prefix([2, *tokenizer.ids(text)]))[0]
        expected = [vocabulary[i] for i in np.argsort(-log_probs, kind="stable")[:3]]
        got = model.suggest(text + " ", k=3)
        assert [word for word, _ in got] == expected
        assert np.allclose([p for _, p in got], np.exp(np.sort(log_probs)[::-1][:3]), atol=1e-5)


def test_nextword_generate_greedy_is_repeated_argmax(nextword_dir):
    """Oracle: re-read the whole growing text and take the likeliest suggestable word, n times."""
    from nlp_lstm.nextword.generate import Decoder, WordTokenizer

    model = nlp_lstm.nextword.load(nextword_dir)
    vocabulary = model.folder.vocabulary
    decoder, tokenizer = Decoder(model.folder.model, vocabulary), WordTokenizer(vocabulary)
    ids = [2, *tokenizer.ids("the movie was")]
    for _ in range(4):
        ids.append(int(np.argmax(decoder.suggestion_log_probs(decoder.read_prefix(ids))[0])))
    assert model.generate("the movie was", 4) == " ".join(vocabulary[i] for i in ids[-4:])


def test_nextword_generate_sampling_is_seeded(nextword_dir):
    model = nlp_lstm.nextword.load(nextword_dir)
    first = model.generate("the movie", 8, rule="temp 2", seed=3)
    assert model.generate("the movie", 8, rule="temp 2", seed=3) == first and len(first.split()) == 8
    assert model.generate("the movie", 0) == ""


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda m: m.suggest("the", k=0), ValueError),
        (lambda m: m.suggest("the", k=2.5), ValueError),
        (lambda m: m.suggest(None), TypeError),
        (lambda m: m.generate("the", -1), ValueError),
        (lambda m: m.generate("the", 10_001), ValueError),
        (lambda m: m.generate("the", 3, rule="nucleus 0.9"), ValueError),
        (lambda m: m.generate("the", 3, rule="topp 2"), ValueError),
        (lambda m: m.generate("the", 3, seed=-5), ValueError),
    ],
)
def test_nextword_bad_arguments_raise_with_the_name(nextword_dir, call, error):
    with pytest.raises(error):
        call(nlp_lstm.nextword.load(nextword_dir))


def test_load_refuses_another_apps_folder(sentiment_dir, nextword_dir, tmp_path):
    with pytest.raises(ModelFolderError):
        nlp_lstm.nextword.load(sentiment_dir)
    with pytest.raises(ModelFolderError):
        nlp_lstm.sentiment.load(nextword_dir)
    with pytest.raises(ModelFolderError):
        nlp_lstm.sentiment.load(tmp_path / "nowhere")


def test_docstring_examples_run(sentiment_dir, nextword_dir):
    from nlp_lstm.nextword import predict as nextword_predict

    for module, model_dir in [(nlp_lstm, None), (nlp_lstm.sentiment, sentiment_dir), (nlp_lstm.nextword, nextword_dir),
                              (nextword_predict, nextword_dir)]:  # fmt: skip
        result = doctest.testmod(module, extraglobs={"model_dir": str(model_dir)})
        assert result.attempted >= 2 and result.failed == 0, module.__name__
