"""The HTTP server: TF Serving's REST API over the served models, on Starlette (run by uvicorn).

    GET  /v1/models/NAME[/versions/N]            {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N]/metadata   {"model_spec": ..., "metadata": {"signature_def": ...}}
    POST /v1/models/NAME[/versions/N]:predict    row or columnar format (nlp_lstm.serve.rest)
    POST /v1/models/sentiment:explain            {"instances": [text, ...]} -> {"explanations": [...]}
                                                 (nlp_lstm.sentiment.explain; a model folder only)
    GET  /                                       a page: suggestions as you type, the sentiment, tinted words
    POST /page/suggest                           {"session", "text", "k"} -> {"suggestions": [[word, p], ...]}

NAME is `sentiment` or `nextword`; N must be the version served (TF Serving serves the newest by
default and answers 404 for another). Every error is {"error": "<one line>"} with a 4xx status: a
body over the size limit (413), too many instances (413), a body that is not UTF-8 or not JSON, a
missing or wrong field (400), an unknown model, version or verb (404), a wrong method (405). A model
call runs in a worker thread through a `Batcher`, so the event loop keeps answering while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from nlp_lstm.serve.batching import Batcher
from nlp_lstm.serve.config import ServerConfig
from nlp_lstm.serve.models import ServedModel
from nlp_lstm.serve.rest import RequestError, parse_explain, parse_json_body, parse_predict, predict_response
from nlp_lstm.serve.sessions import Sessions

_PATH = re.compile(r"(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<metadata>/metadata)?(?::(?P<verb>[^/:]*))?")


PAGE = Path(__file__).parent / "static" / "page.html"
# The page runs only its own inline script and talks only to this server.
PAGE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"
MAX_EXPLAIN_INSTANCES = 16  # an explanation costs ~64 forward and backward passes: a few texts per request


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the body has {int(declared):,} bytes; the server takes at most {limit:,}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the body has more than {limit:,} bytes; the server takes at most {limit:,}", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(models: Mapping[str, ServedModel], config: ServerConfig | None = None) -> Starlette:
    """The Starlette app serving `models` (by name).

    Example (``served``: a loaded sentiment model):

    >>> from nlp_lstm.serve.app import build_app
    >>> app = build_app({"sentiment": served})
    >>> [(route.path, sorted(route.methods)) for route in app.routes][-1]
    ('/v1/models/{rest:path}', ['POST'])
    >>> sorted({route.path for route in app.routes})
    ['/', '/page/suggest', '/v1/models/{rest:path}']
    """
    config = config or ServerConfig()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")  # TF spreads one call over the cores
    timeout_s = config.batch_timeout_ms / 1000
    batchers = {
        (name, signature): Batcher(served.signatures[signature], executor, config.max_batch_size, timeout_s)
        for name, served in models.items()
        for signature in served.signatures
    }

    def find(path: str) -> tuple[ServedModel, re.Match]:
        match = _PATH.fullmatch(path)
        if match is None:
            raise RequestError(f"no such path /v1/models/{path}", 404)
        name, version = match["name"], match["version"]
        if name not in models:
            served = ", ".join(sorted(models)) or "none"
            raise RequestError(f"no model {name!r}; this server has {served}", 404)
        served = models[name]
        if version is not None and version != str(served.version):
            raise RequestError(f"{name} has no version {version!r}; it serves version {served.version}", 404)
        return served, match

    async def model_get(request: Request) -> JSONResponse:
        try:
            served, match = find(request.path_params["rest"])
            if match["verb"] is not None:
                raise RequestError(
                    f"{match['verb'] or 'an empty verb'} is a POST verb; GET reads status or metadata", 405
                )
        except RequestError as error:
            return _error(str(error), error.status)
        if match["metadata"]:
            return JSONResponse(_metadata(served))
        status = {
            "version": str(served.version),
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
        return JSONResponse({"model_version_status": [status]})

    async def model_post(request: Request) -> JSONResponse:
        try:
            served, match = find(request.path_params["rest"])
            verb = match["verb"]
            verbs = ("predict", "explain") if served.name == "sentiment" else ("predict",)
            if verb not in verbs or match["metadata"]:
                allowed = " or ".join(f"{served.name}:{v}" for v in verbs)
                raise RequestError(f"unknown verb {verb!r} for {served.name}; POST .../{allowed}", 404)
            body = parse_json_body(await _read_body(request, config.max_body_bytes))
            if verb == "explain":
                return JSONResponse(await explain_texts(served, body))
            parsed = parse_predict(body, served.signatures, config.max_instances)
            outputs = await batchers[(served.name, parsed.signature.name)].submit(parsed.inputs)
        except RequestError as error:
            return _error(str(error), error.status)
        return JSONResponse(predict_response(parsed, outputs))

    async def explain_texts(served: ServedModel, body: dict[str, Any]) -> dict[str, Any]:
        if served.folder is None:
            raise RequestError(
                f"{served.name} is served from an export ({served.path}), which has no explain signature; serve "
                f"its model folder (--{served.name} DIR of nlp-lstm train) to explain", 400
            )  # fmt: skip
        from nlp_lstm.sentiment.explain import explain

        texts = parse_explain(body, MAX_EXPLAIN_INSTANCES)
        loop = asyncio.get_running_loop()
        explanations = [await loop.run_in_executor(executor, explain, served.folder, text) for text in texts]
        return {"explanations": [why.to_json() for why in explanations]}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for batcher in batchers.values():
            batcher.close()
        executor.shutdown(wait=False, cancel_futures=True)

    page_sessions = _page_sessions(models.get("nextword"))

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Content-Security-Policy": PAGE_POLICY})

    async def page_suggest(request: Request) -> JSONResponse:
        try:
            if "nextword" not in models:
                raise RequestError("this server has no next-word model (nlp-lstm serve --nextword DIR)", 404)
            body = parse_json_body(await _read_body(request, config.max_body_bytes))
            session, text, k = body.get("session"), body.get("text"), body.get("k", 3)
            if not isinstance(session, str) or not 0 < len(session) <= 100:
                raise RequestError("session must be a string of 1 to 100 characters")
            if not isinstance(text, str):
                raise RequestError(f"text must be a string, got {type(text).__name__}")
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10:
                raise RequestError(f"k must be an integer in 1..10, got {k!r}")
        except RequestError as error:
            return _error(str(error), error.status)
        loop = asyncio.get_running_loop()
        suggestions = await loop.run_in_executor(executor, page_sessions, session, text, k)
        return JSONResponse({"suggestions": suggestions})

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/page/suggest", page_suggest, methods=["POST"]),
        Route("/v1/models/{rest:path}", model_get, methods=["GET"]),
        Route("/v1/models/{rest:path}", model_post, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.batchers = batchers
    return app


def _page_sessions(served: ServedModel | None) -> Callable[[str, str, int], list]:
    """The page's suggestions: from a model folder, one `TypedContext` per page (a typed word costs one
    LSTM step); from an export, its serving_default on the text so far (a re-read each time)."""
    if served is None:
        return lambda session, text, k: []
    if served.folder is None:
        signature = served.signatures["serving_default"]

        def from_export(session: str, text: str, k: int) -> list:
            outputs = signature({"text": np.array([text.encode("utf-8", errors="replace")], dtype=object)})
            words = [w.decode("utf-8", errors="replace") for w in outputs["words"][0][:k]]
            return [[word, float(p)] for word, p in zip(words, outputs["probabilities"][0][:k])]

        return from_export
    from nlp_lstm.nextword.generate import Decoder, WordTokenizer
    from nlp_lstm.nextword.prompt import TypedContext

    vocabulary = served.folder.vocabulary
    decoder, tokenizer = Decoder(served.folder.model, vocabulary), WordTokenizer(vocabulary)
    sessions = Sessions(lambda: TypedContext(decoder, tokenizer))

    def from_folder(session: str, text: str, k: int) -> list:
        context = sessions.get(session)
        context.update(text)
        return [[word, float(p)] for word, p in context.suggestions(k)]

    return from_folder


def _metadata(served: ServedModel) -> dict[str, Any]:
    signatures = {name: signature.metadata() for name, signature in sorted(served.signatures.items())}
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": str(served.version)},
        "metadata": {"signature_def": {"signature_def": signatures}},
    }
