"""`nlp-lstm serve`: the real server on a free loopback port, checked against the in-memory models and the
SavedModels' own signatures, in both request formats, with every bad input the issue lists."""

from __future__ import annotations

import doctest
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from nextword_helpers import write_model_folder
from sentiment_helpers import tiny_sentiment_model
from serve_helpers import Client, running

from nlp_lstm.cli import main
from nlp_lstm.cli.serve import bind
from nlp_lstm.serve.config import ServerConfig

REPO = Path(__file__).resolve().parents[1]
REVIEWS = ["A wonderful, moving film.", "Dull and far too long.", "", "great great great", "日本語"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Model folders and exports of both apps."""
    from nlp_lstm.nextword.export import export_nextword
    from nlp_lstm.sentiment.export import export_sentiment

    root = tmp_path_factory.mktemp("serve")
    sentiment = tiny_sentiment_model(tmp_path_factory)[1]
    nextword = write_model_folder(root / "nextword")
    sentiment_export = root / "exports" / "sentiment"
    export_sentiment(sentiment, sentiment_export)
    export_sentiment(sentiment, sentiment_export)  # version 2: the newest is served
    nextword_export = root / "exports" / "nextword"
    export_nextword(nextword, nextword_export)
    return {"sentiment": sentiment, "nextword": nextword, "sentiment_export": sentiment_export,
            "nextword_export": nextword_export}  # fmt: skip


@pytest.fixture(scope="module")
def served(folders):
    from nlp_lstm.serve.models import load_served

    return {"sentiment": load_served("sentiment", folders["sentiment"]),
            "nextword": load_served("nextword", folders["nextword"])}  # fmt: skip


@pytest.fixture(scope="module")
def client(served):
    with running(served) as client:
        yield client


def test_the_page_suggests_as_the_prompt_does(client, folders):
    """Oracle: the terminal prompt's context on the same text (a page's successive texts share its state)."""
    from nlp_lstm.nextword.prompt import TypedContext, load_prompt_model

    status, html = client.request_text("GET", "/")
    assert status == 200 and "<textarea" in html
    oracle = TypedContext(*load_prompt_model(str(folders["nextword"])))
    for text in ["the", "the movie", "the movie was ", "the movie was g", "a film "]:
        status, body = client.post("/page/suggest", {"session": "page-1", "text": text, "k": 3})
        oracle.update(text)
        expected = oracle.suggestions(3)
        assert status == 200 and [w for w, _ in body["suggestions"]] == [w for w, _ in expected]
        assert np.allclose([p for _, p in body["suggestions"]], [p for _, p in expected], atol=1e-6)


def test_status_and_metadata_as_tf_serving_gives_them(client):
    for name in ("sentiment", "nextword"):
        for path in (f"/v1/models/{name}", f"/v1/models/{name}/versions/1"):
            status, body = client.request("GET", path)
            ok = {"error_code": "OK", "error_message": ""}
            assert status == 200 and body == {
                "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]
            }
    status, body = client.request("GET", "/v1/models/nextword/metadata")
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert status == 200 and body["model_spec"] == {"name": "nextword", "signature_name": "", "version": "1"}
    assert sorted(signatures) == ["serving_default", "step"]
    assert signatures["serving_default"]["inputs"]["text"]["dtype"] == "DT_STRING"
    assert signatures["step"]["inputs"]["token_ids"]["dtype"] == "DT_INT64"
    assert sorted(signatures["serving_default"]["outputs"]) == ["probabilities", "words"]


def test_sentiment_predict_matches_the_in_memory_model_in_both_formats(client, folders):
    from nlp_lstm.sentiment.predict import predict_sentiment

    expected = predict_sentiment(folders["sentiment"], REVIEWS)
    status, rows = client.post("/v1/models/sentiment:predict", {"instances": REVIEWS})
    assert status == 200
    status, columns = client.post("/v1/models/sentiment/versions/1:predict", {"inputs": {"text": REVIEWS}})
    assert status == 200
    for i, prediction in enumerate(expected):
        row = rows["predictions"][i]
        assert row["judged"] == prediction.judged == columns["outputs"]["judged"][i]
        assert row["probability"] == pytest.approx(columns["outputs"]["probability"][i], abs=1e-6)
        if prediction.judged:  # the none answer has no probability; the server gives the bias, marked
            assert row["probability"] == pytest.approx(prediction.probability, abs=1e-5)
            assert ["neg", "pos"][row["label"]] == prediction.label
    assert rows["predictions"][2]["judged"] is False  # the empty review


def test_an_export_serves_its_newest_version_with_its_own_signatures(folders, served):
    import tensorflow as tf

    from nlp_lstm.serve.models import load_served

    exported = {"sentiment": load_served("sentiment", folders["sentiment_export"]),
                "nextword": load_served("nextword", folders["nextword_export"])}  # fmt: skip
    assert exported["sentiment"].version == 2 and exported["sentiment"].source == "export"
    own = tf.saved_model.load(str(folders["sentiment_export"] / "2")).signatures["serving_default"]
    direct = own(text=tf.constant(REVIEWS))
    with running(exported) as export_client, running(served) as folder_client:
        status, from_export = export_client.post("/v1/models/sentiment:predict", {"instances": REVIEWS})
        _, from_folder = folder_client.post("/v1/models/sentiment:predict", {"instances": REVIEWS})
        assert status == 200
        assert np.allclose([p["probability"] for p in from_export["predictions"]], direct["probability"].numpy())
        assert np.allclose([p["probability"] for p in from_export["predictions"]],
                           [p["probability"] for p in from_folder["predictions"]], atol=1e-6)  # fmt: skip
        assert export_client.request("GET", "/v1/models/sentiment/versions/1")[0] == 404  # only the newest
        status, words = export_client.post("/v1/models/nextword:predict", {"instances": ["the movie was"]})
        _, same = folder_client.post("/v1/models/nextword:predict", {"instances": ["the movie was"]})
        assert status == 200 and words["predictions"][0]["words"] == same["predictions"][0]["words"]


def test_nextword_predict_matches_the_python_api(client, folders):
    import nlp_lstm

    model = nlp_lstm.nextword.load(folders["nextword"])
    texts = ["the movie was", "a film", ""]
    status, body = client.post("/v1/models/nextword:predict", {"instances": texts})
    assert status == 200
    for text, row in zip(texts, body["predictions"]):
        expected = model.suggest(text + " ", k=5)
        assert row["words"] == [word for word, _ in expected]
        assert np.allclose(row["probabilities"], [p for _, p in expected], atol=1e-5)


def test_the_step_signature_in_both_formats_matches_the_model(client, folders):
    import nlp_lstm

    folder = nlp_lstm.nextword.load(folders["nextword"]).folder
    config = folder.model.config
    states = np.zeros((2, config.state_width, config.units), np.float32)
    logits, new_states = folder.model.step(np.array([2, 3]), states)
    payload = {"signature_name": "step", "instances": [{"token_ids": 2, "states": states[0].tolist()},
                                                       {"token_ids": 3, "states": states[1].tolist()}]}  # fmt: skip
    status, body = client.post("/v1/models/nextword:predict", payload)
    assert status == 200
    assert np.allclose([row["logits"] for row in body["predictions"]], np.asarray(logits), atol=1e-5)
    columnar = {"signature_name": "step", "inputs": {"token_ids": [2, 3], "states": states.tolist()}}
    status, body = client.post("/v1/models/nextword:predict", columnar)
    assert status == 200 and np.allclose(body["outputs"]["states"], np.asarray(new_states), atol=1e-5)


BAD = [
    ("malformed JSON", "/v1/models/sentiment:predict", b'{"instances": [', 400, "not valid JSON"),
    ("not an object", "/v1/models/sentiment:predict", b'["Great"]', 400, "must be a JSON object"),
    ("not UTF-8", "/v1/models/sentiment:predict", b'{"instances": ["\xff\xfe"]}', 400, "not UTF-8"),
    ("no instances", "/v1/models/sentiment:predict", b'{"signature_name": "serving_default"}', 400, "needs"),
    ("both formats", "/v1/models/sentiment:predict", b'{"instances": ["a"], "inputs": ["a"]}', 400, "not both"),
    ("unknown field", "/v1/models/sentiment:predict", b'{"instances": ["a"], "extra": 1}', 400, "unknown field"),
    ("instances not a list", "/v1/models/sentiment:predict", b'{"instances": "Great"}', 400, "must be a list"),
    ("number instance", "/v1/models/sentiment:predict", b'{"instances": ["a", 3]}', 400, "must be a string"),
    ("null instance", "/v1/models/sentiment:predict", b'{"instances": [null]}', 400, "must be a string"),
    ("list instance", "/v1/models/sentiment:predict", b'{"instances": [["a"]]}', 400, "must be a string"),
    ("wrong input name", "/v1/models/sentiment:predict", b'{"instances": [{"review": "a"}]}', 400, "takes ['text']"),
    ("bad b64", "/v1/models/sentiment:predict", b'{"instances": [{"b64": "%%%"}]}', 400, "not valid base64"),
    ("empty list", "/v1/models/sentiment:predict", b'{"instances": []}', 400, "no instances"),
    ("unknown signature", "/v1/models/sentiment:predict", b'{"signature_name": "x", "instances": ["a"]}', 400,
     "no signature 'x'"),
    ("step states shape", "/v1/models/nextword:predict",
     b'{"signature_name": "step", "instances": [{"token_ids": 2, "states": [1.0]}]}', 400, "must have shape"),
    ("step token text", "/v1/models/nextword:predict",
     b'{"signature_name": "step", "inputs": {"token_ids": ["x"], "states": [[[0.0]]]}}', 400, "must be a number"),
    ("unknown model", "/v1/models/translate:predict", b'{"instances": ["a"]}', 404, "no model 'translate'"),
    ("unknown version", "/v1/models/sentiment/versions/7:predict", b'{"instances": ["a"]}', 404, "no version"),
    ("unknown verb", "/v1/models/sentiment:classify", b'{"instances": ["a"]}', 404, "unknown verb"),
    ("no verb", "/v1/models/sentiment", b'{"instances": ["a"]}', 404, "unknown verb"),
    ("page: no session", "/page/suggest", b'{"text": "the movie"}', 400, "session must be"),
    ("page: text a number", "/page/suggest", b'{"session": "s", "text": 3}', 400, "text must be a string"),
    ("page: k too large", "/page/suggest", b'{"session": "s", "text": "a", "k": 99}', 400, "k must be"),
    ("page: not JSON", "/page/suggest", b'{"session"', 400, "not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize("path, body, status, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_request_gets_a_4xx_and_one_line_and_the_server_keeps_serving(client, path, body, status, message):
    answer_status, answer = client.request("POST", path, body, {"Content-Type": "application/json"})
    assert answer_status == status and set(answer) == {"error"}, answer
    assert message in answer["error"] and "\n" not in answer["error"]
    assert client.post("/v1/models/sentiment:predict", {"instances": ["fine"]})[0] == 200


def test_limits_on_the_body_and_the_instances(served):
    with running(served, ServerConfig(max_body_bytes=1 << 20, max_instances=100)) as client:
        status, answer = client.post("/v1/models/sentiment:predict", {"instances": ["a"] * 10_000})
        assert status == 413 and "at most 100" in answer["error"]
        big = json.dumps({"instances": ["x" * (10 << 20)]}).encode()
        status, answer = client.request("POST", "/v1/models/sentiment:predict", big)
        assert status == 413 and "at most 1,048,576" in answer["error"]
        status, answer = client.request("GET", "/v1/models/sentiment:predict")
        assert status == 405 and "POST verb" in answer["error"]
        assert client.post("/v1/models/sentiment:predict", {"instances": ["fine"]})[0] == 200


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(served, folders):
    from nlp_lstm.sentiment.predict import predict_sentiment

    texts = [f"{'great ' * (i % 5)}film number {i}" for i in range(24)]
    expected = [p.probability for p in predict_sentiment(folders["sentiment"], texts)]
    with running(served, ServerConfig(max_batch_size=64, batch_timeout_ms=50)) as client:
        batcher = client.app.state.batchers[("sentiment", "serving_default")]
        before = batcher.batches
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda t: client.post("/v1/models/sentiment:predict", {"instances": [t]}), texts))
        calls = batcher.batches - before
    assert all(status == 200 for status, _ in answers)
    got = [body["predictions"][0]["probability"] for _, body in answers]
    assert np.allclose(got, expected, atol=1e-5)  # each request its own rows, in its own order
    assert calls < len(texts)  # some requests shared a model call


def test_serve_refuses_in_one_line_before_listening(folders, capsys, tmp_path):
    import shutil

    corrupt = Path(shutil.copytree(folders["sentiment"], tmp_path / "corrupt"))
    (corrupt / "model.keras").write_bytes(b"not a model")
    broken_export = tmp_path / "export" / "3"
    broken_export.mkdir(parents=True)
    (broken_export / "saved_model.pb").write_bytes(b"not a graph")
    cases = [
        ([], "give --sentiment DIR, --nextword DIR or both"),
        (["--sentiment", str(tmp_path / "nowhere")], "is not a folder"),
        (["--sentiment", str(folders["nextword"])], "nextword"),  # another app's folder
        (["--nextword", str(tmp_path)], "neither a model folder"),
        (["--sentiment", str(corrupt)], "damaged"),
        (["--sentiment", str(broken_export.parent)], "cannot load the SavedModel"),
        (["--sentiment", str(folders["sentiment"]), "--port", "70000"], "--port"),
        (["--sentiment", str(folders["sentiment"]), "--max-instances", "0"], "--max-instances"),
        (["--sentiment", str(folders["sentiment"]), "--batch-timeout-ms", "-1"], "--batch-timeout-ms"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        try:
            status = main(["serve", "--port", "0", *argv])
        except SystemExit as exit_:
            status = exit_.code
        err = capsys.readouterr().err
        assert status == 2 and message in err.splitlines()[-1] and "Traceback" not in err, (argv, err)
    with bind("127.0.0.1", 0) as taken:
        assert main(["serve", "--sentiment", str(folders["sentiment"]), "--port", str(taken.getsockname()[1])]) == 2
        assert "pass --port with a free port" in capsys.readouterr().err


def test_the_command_says_where_it_listens_and_stops_cleanly_on_sigterm(folders):
    port = bind("127.0.0.1", 0)
    number = port.getsockname()[1]
    port.close()
    command = [sys.executable, "-m", "nlp_lstm.cli", "serve", "--sentiment", str(folders["sentiment"]),
               "--nextword", str(folders["nextword"]), "--port", str(number)]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})  # fmt: skip
    try:
        lines = []
        while not any("listening on" in line for line in lines):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line)
        assert f"listening on http://127.0.0.1:{number}" in lines[-1]
        assert Client(number).post("/v1/models/sentiment:predict", {"instances": ["Great!"]})[0] == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0 and "stopped" in out and "Traceback" not in err, err


def test_docstring_examples_run(served):
    from nlp_lstm.serve import app, batching, rest, sessions

    globs = {"served": served["sentiment"], "signatures": served["sentiment"].signatures}
    for module in (app, batching, rest, sessions):
        result = doctest.testmod(module, extraglobs=globs)
        assert result.attempted >= 1 and result.failed == 0, module.__name__


def test_explain_over_http_is_the_apis_explanation(client, folders, served):
    import nlp_lstm

    status, body = client.post("/v1/models/sentiment:explain", {"instances": ["A wonderful, moving film.", ""]})
    assert status == 200 and len(body["explanations"]) == 2
    expected = nlp_lstm.sentiment.load(folders["sentiment"]).explain("A wonderful, moving film.")
    assert body["explanations"][0]["words"] == expected.words
    assert np.allclose(body["explanations"][0]["combined"], expected.combined, atol=1e-6)
    assert body["explanations"][1]["judged"] is False
    assert client.post("/v1/models/nextword:explain", {"instances": ["a"]})[0] == 404
    assert client.post("/v1/models/sentiment:explain", {"instances": ["a"] * 17})[0] == 413
    assert client.post("/v1/models/sentiment:explain", {"text": "a"})[0] == 400
    from nlp_lstm.serve.models import load_served

    with running({"sentiment": load_served("sentiment", folders["sentiment_export"])}) as export_client:
        status, answer = export_client.post("/v1/models/sentiment:explain", {"instances": ["a"]})
    assert status == 400 and "no explain signature" in answer["error"]


def test_bench_serve_dry_run(folders, capsys):
    import runpy

    bench = runpy.run_path(str(REPO / "scripts" / "bench_serve.py"))
    argv = ["--sentiment", str(folders["sentiment"]), "--nextword", str(folders["nextword"]), "--dry-run"]
    assert bench["main"](argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("sentiment", "nextword"))]
    assert len(rows) == 4 and all(line.split()[-1] == "0" for line in rows)  # no errors in any phase
